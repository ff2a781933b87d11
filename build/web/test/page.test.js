// Unit tests for the viewer page's logic around the player (src/page.js)
// and its emoji (src/emoji.js): node --test (npm test).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DOMParser } from 'linkedom';
import { PAGE_TAGS, sanitizeHTML, sameOriginPath } from '../src/chat.js';
import { EMOJI, customEmojiMap, emojiFile, replaceEmoji, splitEmoji } from '../src/emoji.js';
import { actionColor, actionKind, actionURL, atLiveEdge, behindLive, playerKey, qualityOptions, socialLinks, steerRate } from '../src/page.js';

const ORIGIN = 'https://live.example';

describe('qualityOptions', () => {
  it('offers Auto, then each rendition best first, by level index', () => {
    const levels = [
      { height: 360, bitrate: 800_000 },
      { height: 720, bitrate: 2_500_000 },
      { height: 480, bitrate: 1_200_000 },
    ];
    assert.deepEqual(qualityOptions(levels), [
      { value: -1, label: 'Auto' },
      { value: 1, label: '720p' },
      { value: 2, label: '480p' },
      { value: 0, label: '360p' },
    ]);
  });

  it('tells renditions of one height apart by bitrate, and copes with missing figures', () => {
    assert.deepEqual(qualityOptions([{ height: 720, bitrate: 1_000_000 }, { height: 720, bitrate: 3_000_000 }, {}, null]), [
      { value: -1, label: 'Auto' },
      { value: 1, label: '720p (3000 kbps)' },
      { value: 0, label: '720p (1000 kbps)' },
      { value: 2, label: 'Rendition 3' },
      { value: 3, label: 'Rendition 4' },
    ]);
    assert.deepEqual(qualityOptions(undefined), [{ value: -1, label: 'Auto' }]);
  });
});

describe('atLiveEdge', () => {
  it('is live near the target latency, not when behind or paused', () => {
    assert.equal(atLiveEdge({ latency: 8, targetLatency: 6, paused: false }), true);
    assert.equal(atLiveEdge({ latency: 6 + 3.1, targetLatency: 6, paused: false }), false);
    assert.equal(atLiveEdge({ latency: 6, targetLatency: 6, paused: true }), false);
  });

  it('counts unknown figures (start-up) as live', () => {
    assert.equal(atLiveEdge({ latency: NaN, targetLatency: null, paused: false }), true);
  });
});

describe('socialLinks', () => {
  it('keeps http(s) links only', () => {
    assert.deepEqual(
      socialLinks([
        { platform: 'mastodon', url: 'https://social.example/@me' },
        { platform: 'evil', url: 'javascript:alert(1)' },
        { platform: '', url: 'http://blog.example/' },
        { platform: 'x' },
        null,
      ]),
      [
        { platform: 'mastodon', url: 'https://social.example/@me' },
        { platform: 'blog.example', url: 'http://blog.example/' },
      ],
    );
    assert.deepEqual(socialLinks('nope'), []);
  });
});

describe('actionKind', () => {
  const cases = [
    [{ title: 'Donate', url: 'https://pay.example/', openExternally: true }, 'tab'],
    // Another origin cannot be framed under the page's CSP: a tab instead.
    [{ title: 'Donate', url: 'https://pay.example/', openExternally: false }, 'tab'],
    [{ title: 'Schedule', url: '/public/schedule.html' }, 'frame'],
    [{ title: 'Schedule', url: ORIGIN + '/public/schedule.html' }, 'frame'],
    [{ title: 'Schedule', url: '/public/schedule.html', openExternally: true }, 'tab'],
    [{ title: 'Info', html: '<p>Hi</p>' }, 'html'],
    [{ title: 'Bad', url: 'javascript:alert(1)' }, null],
    [{ title: 'Bad', url: '//evil.example/x' }, null],
    [{ title: '', url: 'https://pay.example/' }, null],
    [{ url: 'https://pay.example/' }, null],
    [null, null],
  ];
  for (const [action, want] of cases) {
    it(`${JSON.stringify(action)} opens as ${want}`, () => assert.equal(actionKind(action, ORIGIN), want));
  }

  it('resolves a path on this origin and refuses other schemes', () => {
    assert.equal(actionURL({ url: '/public/a.html' }, ORIGIN), ORIGIN + '/public/a.html');
    assert.equal(actionURL({ url: 'data:text/html,<script>' }, ORIGIN), null);
  });
});

describe('actionColor', () => {
  it('takes plain colours only', () => {
    assert.equal(actionColor('#ff0044'), '#ff0044');
    assert.equal(actionColor('rebeccapurple'), 'rebeccapurple');
    assert.equal(actionColor('rgb(10, 20, 30)'), 'rgb(10, 20, 30)');
    assert.equal(actionColor('red; background: url(//x)'), '');
    assert.equal(actionColor(undefined), '');
  });
});

describe('playerKey', () => {
  it('maps the usual player keys and leaves shortcuts alone', () => {
    assert.equal(playerKey({ key: 'k' }), 'play');
    assert.equal(playerKey({ key: ' ' }), 'play');
    assert.equal(playerKey({ key: 'M' }), 'mute');
    assert.equal(playerKey({ key: 'f' }), 'fullscreen');
    assert.equal(playerKey({ key: 'l' }), 'live');
    assert.equal(playerKey({ key: 'f', ctrlKey: true }), null);
    assert.equal(playerKey({ key: 'x' }), null);
  });
});

describe('emoji', () => {
  it('names files as Twemoji does', () => {
    assert.equal(emojiFile('😀'), '1f600.svg');
    assert.equal(emojiFile('❤️'), '2764.svg'); // the selector goes without a ZWJ
    assert.equal(emojiFile('❤️‍🔥'), '2764-fe0f-200d-1f525.svg');
  });

  it('has a distinct file for each picker emoji', () => {
    assert.equal(new Set(EMOJI.map(([c]) => emojiFile(c))).size, EMOJI.length);
  });

  it('splits text into runs, bundled emoji and custom emoji', () => {
    const custom = new Map([['party', '/img/emoji/party.gif']]);
    assert.deepEqual(splitEmoji('hi 😀 :party: :nope: ❤ ☕️!', custom), [
      { text: 'hi ' },
      { emoji: '😀', file: '1f600.svg' },
      { text: ' ' },
      { custom: 'party', url: '/img/emoji/party.gif' },
      { text: ' :nope: ' },
      { emoji: '❤️', file: '2764.svg' },
      { text: ' ' },
      { emoji: '☕', file: '2615.svg' },
      { text: '!' },
    ]);
    assert.deepEqual(splitEmoji('𝒜 plain'), [{ text: '𝒜 plain' }]);
  });

  it('keeps only custom emoji served here', () => {
    const map = customEmojiMap([
      { name: 'party.gif', url: '/img/emoji/party.gif' },
      { name: 'x.png', url: 'https://evil.example/x.png' },
      { name: '../a.png', url: '/img/emoji/../a.png' },
      null,
    ]);
    assert.deepEqual([...map], [['party', '/img/emoji/party.gif']]);
    assert.equal(customEmojiMap('nope').size, 0);
  });

  it('replaces emoji in text with images, leaving markup alone', () => {
    const document = new DOMParser().parseFromString('<!doctype html><html><body></body></html>', 'text/html');
    const div = document.createElement('div');
    div.appendChild(sanitizeHTML('<p>so <strong>good 🔥</strong> :party:</p>', document, new DOMParser()));
    replaceEmoji(div, document, '/assets/emoji/', new Map([['party', '/img/emoji/party.gif']]));
    const attrs = (img) => Object.fromEntries([...img.attributes].map((at) => [at.name, at.value]));
    const imgs = [...div.querySelectorAll('img')].map(attrs);
    assert.deepEqual(imgs, [
      { class: 'emoji', src: '/assets/emoji/1f525.svg', alt: '🔥', draggable: 'false' },
      { class: 'emoji emoji-custom', src: '/img/emoji/party.gif', alt: ':party:', draggable: 'false' },
    ]);
    assert.equal(div.querySelector('strong').textContent, 'good ');
    assert.equal(div.textContent, 'so good  ');
  });
});

describe('page sanitiser', () => {
  const parser = new DOMParser();
  const document = parser.parseFromString('<!doctype html><html><body></body></html>', 'text/html');
  const clean = (html) => {
    const div = document.createElement('div');
    div.appendChild(sanitizeHTML(html, document, parser, PAGE_TAGS));
    return div.innerHTML;
  };

  it('keeps the Markdown structure of the about page', () => {
    assert.equal(
      clean('<h2>Hi</h2><ul><li><strong>bold</strong></li></ul><blockquote>q</blockquote><hr>'),
      '<h2>Hi</h2><ul><li><strong>bold</strong></li></ul><blockquote>q</blockquote><hr>',
    );
  });

  it('keeps images of this origin only, and no attribute but src and alt', () => {
    const div = document.createElement('div');
    div.appendChild(sanitizeHTML('<img src="/logo" alt="logo" onerror="x()" style="x">', document, parser, PAGE_TAGS));
    const img = div.querySelector('img');
    assert.deepEqual([...img.attributes].map((at) => at.name).sort(), ['alt', 'src']);
    assert.equal(img.getAttribute('src'), '/logo');
    assert.equal(clean('<img src="https://evil.example/t.gif">'), '');
    assert.equal(clean('<img src="//evil.example/t.gif">'), '');
    assert.equal(clean('<img src="javascript:alert(1)">'), '');
  });

  it('drops scripts and handlers as the chat does', () => {
    assert.equal(clean('<p onclick="x()">a<script>alert(1)</script></p><iframe src="/"></iframe>'), '<p>a</p>');
  });

  it('accepts only paths of this origin as same-origin', () => {
    assert.equal(sameOriginPath('/img/emoji/a.png'), '/img/emoji/a.png');
    for (const bad of ['//x', '/\\x', 'http://x/', 'x', '', undefined]) assert.equal(sameOriginPath(bad), null);
  });
});

describe('steerRate', () => {
  const steer = (off, rate = 1, sharing = true) => steerRate({ off, rate, sharing });

  it('catches up faster the further behind, until back on target', () => {
    assert.equal(steer(0.4), 1, 'jitter is left alone');
    assert.equal(steer(0.7), 1.1);
    assert.equal(steer(1.5), 1.1);
    assert.equal(steer(5), 1.25);
    assert.equal(steer(1.5, 1.25), 1.1, 'closer: slower');
    assert.equal(steer(0.5, 1.1), 1.1, 'keeps catching up while behind');
    assert.equal(steer(-0.1, 1.1), 1, 'on target: normal speed');
  });

  it('slows a sharing viewer who is ahead, and only a sharing one', () => {
    assert.equal(steer(-0.4), 1);
    assert.equal(steer(-0.7), 0.9);
    assert.equal(steer(-0.2, 0.9), 0.9, 'keeps slowing while ahead');
    assert.equal(steer(0.1, 0.9), 1);
    assert.equal(steer(-1.5, 1, false), 1);
  });

  it('converges from the furthest it steers within a minute', () => {
    // Simulated in 0.25 s steps of playback time.
    let off = 8;
    let rate = 1;
    let t = 0;
    while (off > 0 && t < 600) {
      rate = steer(off, rate);
      off -= (rate - 1) * 0.25;
      t += 0.25;
    }
    assert.ok(t <= 60, `took ${t} s`);
    assert.equal(steer(off, rate), 1);
  });

  it('leaves the rate alone without a figure', () => {
    assert.equal(steer(NaN, 1.1), 1.1);
  });
});

describe('behindLive', () => {
  it('reads how far behind, to a tenth below 10 s', () => {
    assert.equal(behindLive(3.24), '3.2 s behind');
    assert.equal(behindLive(12.6), '13 s behind');
    assert.equal(behindLive(NaN), '');
    assert.equal(behindLive(-1), '');
  });
});
