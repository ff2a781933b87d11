import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHTML } from 'linkedom';
import { options, render } from 'preact';
import { setupRerender } from 'preact/test-utils';

const { window, document } = parseHTML('<!doctype html><html><body><main></main></body></html>');
globalThis.window = window;
globalThis.document = document;
const { Composite, html, Setting } = await import('../src/admin/ui.js');

// mounted renders vnode with its effects held back until flush(), as a
// busy browser holds them back until after a paint.
function mounted(vnode) {
  let pending = null;
  const saved = options.requestAnimationFrame;
  options.requestAnimationFrame = (f) => {
    pending = f;
  };
  const rerender = setupRerender();
  const root = document.createElement('div');
  document.body.appendChild(root);
  render(vnode, root);
  return {
    root,
    type(el, value) {
      el.value = value;
      el.dispatchEvent(new window.Event('input', { bubbles: true }));
      rerender();
    },
    flush() {
      if (pending) pending();
      pending = null;
      rerender();
    },
    done() {
      options.requestAnimationFrame = saved;
      render(null, root);
    },
  };
}

test('what the admin types before the first paint stays', () => {
  const m = mounted(html`<${Setting} label="Server name" path="name" value="Starling" />`);
  const input = m.root.querySelector('input');
  assert.equal(input.value, 'Starling');
  m.type(input, '');
  m.flush();
  assert.equal(m.root.querySelector('input').value, '', 'the field went back to the saved value');
  m.done();
});

test("a field follows the server's value when that changes", () => {
  const setting = (value) => html`<${Setting} label="Server name" path="name" value=${value} />`;
  const m = mounted(setting('Starling'));
  m.flush();
  m.type(m.root.querySelector('input'), 'Half typed');
  render(setting('Renamed elsewhere'), m.root);
  m.flush();
  assert.equal(m.root.querySelector('input').value, 'Renamed elsewhere');
  m.done();
});

test('a composite keeps its rows through the first paint', () => {
  const m = mounted(html`<${Composite} title="Links" path="socialhandles" value=${['a']}
    render=${(rows, set) => html`<input value=${rows.join(',')} onInput=${(e) => set(e.target.value.split(','))} />`} />`);
  m.type(m.root.querySelector('input'), 'a,b');
  m.flush();
  assert.equal(m.root.querySelector('input').value, 'a,b');
  m.done();
});
