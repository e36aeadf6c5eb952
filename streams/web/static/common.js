// Shared by the three pages: API calls (with the bearer token when the worker asks for one),
// the live event stream with its "disconnected" banner, and DOM helpers that insert text as
// text (textContent), never as HTML.
'use strict';

const Storywatch = (() => {
  const TOKEN_KEY = 'storywatch-token';

  // A token given once as ?access_token= is kept for this tab and removed from the URL.
  (function takeTokenFromUrl() {
    const url = new URL(location.href);
    const token = url.searchParams.get('access_token');
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      url.searchParams.delete('access_token');
      history.replaceState(null, '', url.pathname + url.search + url.hash);
    }
  })();

  function token() { return sessionStorage.getItem(TOKEN_KEY); }
  let tokenRefused = false; // the API answered 401: ask for a token, stop reconnecting

  // el('a', {href: x, class: 'y'}, 'text', child): text children become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Only http(s) links from articles become links (never javascript: or data:).
  function safeUrl(raw) {
    try {
      const url = new URL(raw);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (e) { return null; }
  }

  function time(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return '';
    return new Date(epochSeconds * 1000).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  }

  function banner(message, askToken) {
    const box = document.getElementById('banner');
    if (!box) return;
    if (!message) { box.className = ''; box.replaceChildren(); return; }
    const children = [message];
    if (askToken) {
      const input = el('input', {type: 'password', placeholder: 'API token', 'aria-label': 'API token'});
      const form = el('form', {}, input, el('button', {type: 'submit'}, 'Use token'));
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        location.reload();
      });
      children.push(form);
    }
    box.replaceChildren(...children.map(c => c instanceof Node ? c : document.createTextNode(c)));
    box.className = 'shown';
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || ('HTTP ' + status));
      this.status = status;
      this.field = body && body.field;
    }
  }

  async function api(path) {
    const headers = {Accept: 'application/json'};
    if (token()) headers.Authorization = 'Bearer ' + token();
    const response = await fetch(path, {headers});
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (response.status === 401) {
      tokenRefused = true;
      banner('This worker needs an API token for the dashboard: ', true);
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // The live stream: handlers by event name; the banner shows while it is down; the
  // browser reconnects by itself with Last-Event-ID, and we start a new one if it gives up.
  function live(handlers) {
    let source = null;
    let lastId = null;
    let retryTimer = null;
    function connect() {
      const url = new URL('/api/events/stream', location.origin);
      if (token()) url.searchParams.set('access_token', token());
      if (lastId) url.searchParams.set('last_event_id', lastId);
      source = new EventSource(url.pathname + url.search);
      source.addEventListener('hello', () => {
        banner(null);
        document.body.dataset.live = 'connected';
        if (handlers.connected) handlers.connected();
      });
      for (const name of ['story', 'join', 'merged', 'alert', 'reset']) {
        source.addEventListener(name, (ev) => {
          if (ev.lastEventId) lastId = ev.lastEventId;
          if (handlers[name]) handlers[name](JSON.parse(ev.data || '{}'));
        });
      }
      source.onerror = () => {
        document.body.dataset.live = 'disconnected';
        if (tokenRefused) { source.close(); return; } // the token form stays in the banner
        banner('Disconnected from the worker: reconnecting…');
        if (handlers.disconnected) handlers.disconnected();
        if (source.readyState === EventSource.CLOSED && !retryTimer) {
          retryTimer = setTimeout(() => { retryTimer = null; connect(); }, 3000);
        }
      };
    }
    connect();
  }

  // Bars as SVG rects: one per count, scaled to the tallest.
  function bars(counts, cls, width, height) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('class', cls);
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    const top = Math.max(1, ...counts);
    const step = width / Math.max(1, counts.length);
    counts.forEach((n, i) => {
      if (!n) return;
      const h = Math.max(1, (n / top) * (height - 2));
      const rect = document.createElementNS(ns, 'rect');
      rect.setAttribute('x', (i * step + step * 0.1).toFixed(2));
      rect.setAttribute('width', Math.max(0.5, step * 0.8).toFixed(2));
      rect.setAttribute('y', (height - h).toFixed(2));
      rect.setAttribute('height', h.toFixed(2));
      svg.appendChild(rect);
    });
    svg.setAttribute('aria-label', counts.join(', ') + ' articles per interval');
    return svg;
  }

  function fresh(node) {
    node.classList.add('fresh');
    requestAnimationFrame(() => requestAnimationFrame(() => node.classList.remove('fresh')));
  }

  return {api, ApiError, banner, bars, el, fresh, live, safeUrl, time};
})();
