// The admin API as the panel calls it: the session cookie, the session's
// CSRF token on every request that changes something, and the server's
// own message when it refuses.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

let csrf = null;

// loginURL is the login form, returning to where the admin was.
export function loginURL(loc = window.location) {
  return '/admin/login?next=' + encodeURIComponent(loc.pathname + loc.search);
}

function toLogin() {
  window.location.assign(loginURL());
}

async function session() {
  const r = await fetch('/api/admin/session', { credentials: 'same-origin' });
  if (r.status === 401) {
    toLogin();
    throw new ApiError('Your session ended: log in again.', 401);
  }
  const s = await r.json();
  csrf = s.csrfToken || '';
  return s;
}

// call sends a request and returns the decoded answer, or throws an
// ApiError with the server's message.
export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') {
    if (csrf === null) await session();
    headers['X-CSRF-Token'] = csrf;
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) {
    toLogin();
    throw new ApiError('Your session ended: log in again.', 401);
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) {
    const msg = (data && (data.message || data.error)) || `${r.status} ${r.statusText}`;
    throw new ApiError(msg, r.status);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);

// setConfig saves one setting: POST /api/admin/config/PATH {"value": v}.
export const setConfig = (path, value) => post('/api/admin/config/' + path, { value });

// logout ends the session and goes to the login form.
export async function logout() {
  await post('/admin/logout');
  window.location.assign('/admin/login');
}

export { session };
