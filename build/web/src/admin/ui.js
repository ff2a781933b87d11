// The panel's building blocks: a setting that saves itself and shows the
// server's message beside it, cards, and lists of rows.
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { setConfig } from './api.js';
import { lines, unlines } from './format.js';

export const html = htm.bind(h);

let nextID = 0;
export function useID(prefix) {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}-${++nextID}`;
  return ref.current;
}

// useAsync runs load on mount (and when deps change) and keeps its result.
export function useAsync(load, deps = []) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const reload = () =>
    load().then(
      (data) => setState({ loading: false, data, error: null }),
      (error) => setState({ loading: false, data: null, error }),
    );
  useEffect(() => {
    reload();
  }, deps);
  return [state, reload];
}

// usePoll calls f now and every ms until the component goes.
export function usePoll(f, ms) {
  useEffect(() => {
    let stopped = false;
    let timer = null;
    const tick = async () => {
      try {
        await f();
      } finally {
        if (!stopped) timer = setTimeout(tick, ms);
      }
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);
}

export function Card({ title, children, wide }) {
  return html`<section class=${'card' + (wide ? ' wide' : '')} aria-label=${title}>
    <h2>${title}</h2>
    ${children}
  </section>`;
}

export function Loading({ state, children }) {
  if (state.loading) return html`<p class="muted" role="status">Loading…</p>`;
  if (state.error) return html`<p class="error" role="alert">${state.error.message}</p>`;
  return children(state.data);
}

// Status is a save's outcome beside its control.
function Status({ status, id }) {
  if (!status) return html`<span id=${id} class="status" aria-live="polite"></span>`;
  return html`<span id=${id} class=${'status ' + status.kind} role=${status.kind === 'error' ? 'alert' : 'status'}>${status.text}</span>`;
}

// useSave wraps a save: busy while it runs, then the server's message.
export function useSave() {
  const [status, setStatus] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async (f, ok = 'Saved') => {
    setBusy(true);
    setStatus(null);
    try {
      const r = await f();
      setStatus({ kind: 'ok', text: ok });
      return r;
    } catch (e) {
      setStatus({ kind: 'error', text: e.message });
      throw e;
    } finally {
      setBusy(false);
    }
  };
  return { status, busy, run, setStatus };
}

// useDraft is a field's edit of the server's value: it starts as that
// value and goes back to it only when the server's value changes. (An
// effect that set it on mount would run after the first paint and wipe
// what the admin typed in the meantime.)
function useDraft(value, toDraft = (v) => v) {
  const key = JSON.stringify(value);
  const [draft, setDraft] = useState(() => toDraft(value));
  const shown = useRef(key);
  useEffect(() => {
    if (shown.current === key) return;
    shown.current = key;
    setDraft(toDraft(value));
  }, [key]);
  return [draft, setDraft];
}

// Setting is one setting with its own Save: applied live, or refused
// with the server's reason beside the field; nothing else changes.
//   kind: text | textarea | number | list | select | bool
export function Setting({ label, path, value, kind = 'text', help, options, rows, placeholder, onSaved, toValue }) {
  const id = useID('setting');
  const statusID = id + '-status';
  const [draft, setDraft] = useDraft(value, kind === 'list' ? unlines : undefined);
  const save = useSave();
  const valueOf = (d) => {
    if (toValue) return toValue(d);
    if (kind === 'list') return lines(d);
    if (kind === 'number') return Number(d);
    return d;
  };
  const submit = async (e, d = draft) => {
    if (e) e.preventDefault();
    try {
      await save.run(() => setConfig(path, valueOf(d)));
      if (onSaved) onSaved(valueOf(d));
    } catch {
      // shown beside the field
    }
  };
  const described = [help ? id + '-help' : null, statusID].filter(Boolean).join(' ');
  if (kind === 'bool') {
    return html`<div class="setting bool">
      <label for=${id}>
        <input id=${id} type="checkbox" checked=${!!draft} disabled=${save.busy} aria-describedby=${described}
          onChange=${(e) => {
            setDraft(e.target.checked);
            submit(null, e.target.checked);
          }} />
        ${label}
      </label>
      ${help && html`<p id=${id + '-help'} class="help">${help}</p>`}
      <${Status} status=${save.status} id=${statusID} />
    </div>`;
  }
  let control;
  const common = { id, disabled: save.busy, 'aria-describedby': described, placeholder };
  if (kind === 'textarea' || kind === 'list') {
    control = html`<textarea ...${common} rows=${rows || (kind === 'list' ? 5 : 4)} value=${draft} onInput=${(e) => setDraft(e.target.value)} />`;
  } else if (kind === 'select') {
    control = html`<select ...${common} value=${String(draft)} onChange=${(e) => setDraft(e.target.value)}>
      ${options.map((o) => html`<option value=${String(o.value)}>${o.label}</option>`)}
    </select>`;
  } else {
    control = html`<input ...${common} type=${kind === 'number' ? 'number' : 'text'} value=${draft} onInput=${(e) => setDraft(e.target.value)} />`;
  }
  return html`<form class="setting" onSubmit=${submit}>
    <label for=${id}>${label}</label>
    ${help && html`<p id=${id + '-help'} class="help">${help}</p>`}
    <div class="row">
      ${control}
      <button type="submit" disabled=${save.busy}>Save</button>
    </div>
    <${Status} status=${save.status} id=${statusID} />
  </form>`;
}

// SaveButton saves a composite value (a list of rows, a form of several
// fields) as one setting.
export function SaveBar({ save, onSave, label = 'Save' }) {
  const id = useID('save');
  return html`<div class="savebar">
    <button type="button" onClick=${onSave} disabled=${save.busy} aria-describedby=${id}>${label}</button>
    <${Status} status=${save.status} id=${id} />
  </div>`;
}

// Rows edits a list of objects: each row a set of inputs, with add and
// remove.
export function Rows({ rows, setRows, fields, blank, addLabel = 'Add' }) {
  const base = useID('rows');
  const set = (i, k, v) => setRows(rows.map((r, j) => (j === i ? { ...r, [k]: v } : r)));
  return html`<div class="rows">
    ${rows.map(
      (r, i) => html`<fieldset class="rowset">
        <legend class="sr-only">Row ${i + 1}</legend>
        ${fields.map((f) => {
          const id = `${base}-${f.key}-${i}`;
          if (f.kind === 'bool') {
            return html`<label class="inline" for=${id}><input id=${id} type="checkbox" checked=${!!r[f.key]} onChange=${(e) => set(i, f.key, e.target.checked)} /> ${f.label}</label>`;
          }
          if (f.kind === 'select') {
            return html`<label class="cell" for=${id}>${f.label}
              <select id=${id} value=${String(r[f.key] ?? '')} onChange=${(e) => set(i, f.key, f.number ? Number(e.target.value) : e.target.value)}>
                ${f.options.map((o) => html`<option value=${String(o.value)}>${o.label}</option>`)}
              </select></label>`;
          }
          return html`<label class="cell" for=${id}>${f.label}
            <input id=${id} type=${f.kind === 'number' ? 'number' : 'text'} value=${r[f.key] ?? ''} placeholder=${f.placeholder || ''}
              onInput=${(e) => set(i, f.key, f.kind === 'number' ? Number(e.target.value) : e.target.value)} /></label>`;
        })}
        <button type="button" class="secondary" onClick=${() => setRows(rows.filter((_, j) => j !== i))} aria-label=${'Remove row ' + (i + 1)}>Remove</button>
      </fieldset>`,
    )}
    <button type="button" class="secondary" onClick=${() => setRows(rows.concat([{ ...blank }]))}>${addLabel}</button>
  </div>`;
}

// Composite is a setting whose value is edited as rows or several fields
// and saved whole.
export function Composite({ title, path, value, help, render, toValue, onSaved }) {
  const [draft, setDraft] = useDraft(value);
  const save = useSave();
  const onSave = async () => {
    const v = toValue ? toValue(draft) : draft;
    try {
      await save.run(() => setConfig(path, v));
      if (onSaved) onSaved(v);
    } catch {
      // shown beside the button
    }
  };
  return html`<div class="setting composite">
    <h3>${title}</h3>
    ${help && html`<p class="help">${help}</p>`}
    ${render(draft, setDraft)}
    <${SaveBar} save=${save} onSave=${onSave} />
  </div>`;
}

export function Table({ columns, rows, empty = 'Nothing yet.', caption }) {
  if (!rows || rows.length === 0) return html`<p class="muted">${empty}</p>`;
  return html`<div class="table-wrap"><table>
    ${caption && html`<caption class="sr-only">${caption}</caption>`}
    <thead><tr>${columns.map((c) => html`<th scope="col">${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr>${columns.map((c) => html`<td>${c.render ? c.render(r) : r[c.key]}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}
