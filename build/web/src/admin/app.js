// The admin panel: a page a setting area, the dashboard first. Every page
// is a path under /admin/, so deep links and the back button work.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { logout } from './api.js';
import { route } from './format.js';
import { Dashboard } from './dashboard.js';
import { Appearance, ChatSettings, General, Notifications, P2P, Server, Storage, Video } from './settings.js';
import { Fediverse, Integrations, Logs, Moderation } from './community.js';
import { html } from './ui.js';

export const PAGES = {
  '': { title: 'Dashboard', view: Dashboard },
  general: { title: 'General', view: General },
  appearance: { title: 'Appearance', view: Appearance },
  server: { title: 'Server', view: Server },
  video: { title: 'Video', view: Video },
  storage: { title: 'Storage', view: Storage },
  p2p: { title: 'Peer-to-peer', view: P2P },
  chat: { title: 'Chat', view: ChatSettings },
  moderation: { title: 'Moderation', view: Moderation },
  fediverse: { title: 'Fediverse', view: Fediverse },
  integrations: { title: 'Integrations', view: Integrations },
  notifications: { title: 'Notifications', view: Notifications },
  logs: { title: 'Logs', view: Logs },
};

const hrefOf = (name) => '/admin/' + name;

function App() {
  const [path, setPath] = useState(window.location.pathname);
  const [menu, setMenu] = useState(false);
  useEffect(() => {
    const onPop = () => setPath(window.location.pathname);
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  const name = route(path, PAGES);
  const page = name === null ? null : PAGES[name];
  useEffect(() => {
    document.title = (page ? page.title : 'Not found') + ' · Starling admin';
    const h = document.querySelector('main h1');
    if (h) h.focus();
  }, [name]);
  const go = (e, to) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    window.history.pushState(null, '', hrefOf(to));
    setPath(hrefOf(to));
    setMenu(false);
  };
  const View = page && page.view;
  return html`<div class="shell">
    <a class="skip" href="#main">Skip to the page</a>
    <header class="top">
      <button type="button" class="menu" aria-expanded=${menu} aria-controls="nav" onClick=${() => setMenu(!menu)}>Menu</button>
      <span class="brand">Starling admin</span>
      <a class="viewer" href="/" target="_blank" rel="noopener">Viewer page</a>
      <button type="button" class="secondary" onClick=${() => logout().catch(() => {})}>Log out</button>
    </header>
    <nav id="nav" class=${menu ? 'open' : ''} aria-label="Admin pages">
      <ul>${Object.entries(PAGES).map(
        ([key, p]) => html`<li><a href=${hrefOf(key)} aria-current=${key === name ? 'page' : undefined} onClick=${(e) => go(e, key)}>${p.title}</a></li>`,
      )}</ul>
    </nav>
    <main id="main">
      <h1 tabindex="-1">${page ? page.title : 'Not found'}</h1>
      ${View ? html`<${View} key=${name} />` : html`<p>No such page. <a href="/admin/" onClick=${(e) => go(e, '')}>Go to the dashboard</a>.</p>`}
    </main>
  </div>`;
}

const root = document.getElementById('app');
root.replaceChildren(); // the "Loading" line the page came with
render(html`<${App} />`, root);
