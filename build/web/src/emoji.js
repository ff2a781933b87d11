// Emoji for the chat: a small picker drawn from a bundled image set
// (Twemoji, from @discordapp/twemoji; build.mjs copies only the images of
// EMOJI into the bundle), so every viewer sees the same pictures whatever
// their system's font has, and the admin's custom emoji (/api/emoji).
// No DOM here but what the caller hands in, so node can test it.

// The picker: [character, label]. build.mjs copies emojiFile(character)
// for each of these, and only these.
export const EMOJI = [
  ['😀', 'grinning face'],
  ['😂', 'face with tears of joy'],
  ['🤣', 'rolling on the floor laughing'],
  ['😊', 'smiling face'],
  ['😍', 'heart eyes'],
  ['😎', 'cool'],
  ['🤔', 'thinking'],
  ['😮', 'surprised'],
  ['😢', 'crying'],
  ['😭', 'sobbing'],
  ['😡', 'angry'],
  ['😅', 'sweat smile'],
  ['😉', 'wink'],
  ['🙃', 'upside-down face'],
  ['😴', 'sleeping'],
  ['🤯', 'mind blown'],
  ['🥳', 'party face'],
  ['😬', 'grimace'],
  ['🙄', 'eye roll'],
  ['😇', 'halo'],
  ['👍', 'thumbs up'],
  ['👎', 'thumbs down'],
  ['👏', 'clapping'],
  ['🙌', 'raised hands'],
  ['🙏', 'thank you'],
  ['👋', 'waving hand'],
  ['💪', 'flexed biceps'],
  ['🤝', 'handshake'],
  ['❤️', 'red heart'],
  ['💜', 'purple heart'],
  ['🔥', 'fire'],
  ['✨', 'sparkles'],
  ['🎉', 'party popper'],
  ['💯', 'hundred points'],
  ['⭐', 'star'],
  ['🚀', 'rocket'],
  ['👀', 'eyes'],
  ['🎮', 'video game'],
  ['🎵', 'music'],
  ['☕', 'coffee'],
];

// emojiFile is Twemoji's file name for an emoji: its code points in hex
// joined by '-', without U+FE0F (variation selector 16) unless the
// sequence has a zero-width joiner (twemoji's own rule, toCodePoint with
// the selector stripped).
export function emojiFile(char) {
  const points = [...char].map((c) => c.codePointAt(0));
  const kept = points.includes(0x200d) ? points : points.filter((p) => p !== 0xfe0f);
  return kept.map((p) => p.toString(16)).join('-') + '.svg';
}

// Longest first, so that '❤️' wins over a bare '❤' were both listed.
const KNOWN = [...EMOJI.map(([c]) => c)].sort((a, b) => b.length - a.length);

// splitEmoji cuts text into pieces: {text} runs and {emoji, file} for each
// bundled emoji, plus {custom, url} for ':name:' of a custom emoji in
// custom (a Map of name to URL). Anything else stays text. A bare
// character that is a bundled emoji's base without its selector (❤ for
// ❤️) counts too: people type both.
export function splitEmoji(text, custom = new Map()) {
  const out = [];
  let run = '';
  const flush = () => {
    if (run) out.push({ text: run });
    run = '';
  };
  for (let i = 0; i < text.length; ) {
    if (text[i] === ':' && custom.size) {
      const end = text.indexOf(':', i + 1);
      const name = end > i ? text.slice(i + 1, end) : '';
      if (name && custom.has(name)) {
        flush();
        out.push({ custom: name, url: custom.get(name) });
        i = end + 1;
        continue;
      }
    }
    let hit = KNOWN.find((c) => text.startsWith(c, i));
    let len = hit ? hit.length : 0;
    if (!hit) {
      hit = KNOWN.find((c) => c.endsWith('\ufe0f') && text.startsWith(c.slice(0, -1), i));
      len = hit ? hit.length - 1 : 0;
    }
    if (hit) {
      if (text[i + len] === '\ufe0f') len++; // ☕️ is ☕
      flush();
      out.push({ emoji: hit, file: emojiFile(hit) });
      i += len;
      continue;
    }
    const cp = text.codePointAt(i);
    const ch = String.fromCodePoint(cp);
    run += ch;
    i += ch.length;
  }
  flush();
  return out;
}

// customEmojiMap turns /api/emoji's answer ([{name: 'party.gif', url}])
// into name (without extension) -> URL, for the emoji served by this
// server only.
export function customEmojiMap(list) {
  const map = new Map();
  if (!Array.isArray(list)) return map;
  for (const e of list) {
    if (!e || typeof e.name !== 'string' || typeof e.url !== 'string') continue;
    if (!e.url.startsWith('/img/emoji/')) continue;
    const name = e.name.replace(/\.[a-z]+$/i, '');
    if (/^[A-Za-z0-9_-]{1,64}$/.test(name)) map.set(name, e.url);
  }
  return map;
}

// replaceEmoji swaps, in the text under root (a DOM node), every bundled or
// custom emoji for an <img> of it; the alt text keeps the original, so
// copying the message still gives the characters.
export function replaceEmoji(root, doc, base, custom = new Map()) {
  const texts = [];
  const walk = (node) => {
    for (const child of [...node.childNodes]) {
      if (child.nodeType === 3) texts.push(child);
      else if (child.nodeType === 1) walk(child);
    }
  };
  walk(root);
  for (const node of texts) {
    const parts = splitEmoji(node.nodeValue, custom);
    if (parts.length === 1 && parts[0].text !== undefined) continue;
    const frag = doc.createDocumentFragment();
    for (const p of parts) {
      if (p.text !== undefined) {
        frag.appendChild(doc.createTextNode(p.text));
        continue;
      }
      const img = doc.createElement('img');
      img.className = p.custom ? 'emoji emoji-custom' : 'emoji';
      img.setAttribute('src', p.custom ? p.url : base + p.file);
      img.setAttribute('alt', p.custom ? `:${p.custom}:` : p.emoji);
      img.setAttribute('draggable', 'false');
      frag.appendChild(img);
    }
    node.parentNode.replaceChild(frag, node);
  }
}
