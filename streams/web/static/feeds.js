// The feeds the workers poll, with their health (GET /api/feeds); refreshed every 10 s.
'use strict';

(() => {
  const {api, el, safeUrl} = Storywatch;
  const body = document.querySelector('#feeds tbody');
  const status = document.getElementById('status');
  // Why 10 s: a feed is polled every few minutes; a health change shows within 10 s.
  const REFRESH_MS = 10000;

  function row(f) {
    const href = safeUrl(f.url);
    const name = f.name || f.url;
    return el('tr', {'data-feed-id': f.id, 'data-status': f.status},
      el('td', {}, href ? el('a', {href, rel: 'noopener noreferrer'}, name) : name,
        el('div', {class: 'muted'}, f.id)),
      el('td', {}, f.status, f.status === 'error' || f.status === 'retired' ? el('span', {class: 'badge'}, '!') : null),
      el('td', {class: 'n'}, String(f.items_last_day)),
      el('td', {}, f.last_success || '–'),
      el('td', {}, f.next_poll || '–'),
      el('td', {class: 'muted'}, f.status === 'ok' ? '' : (f.last_error || '')));
  }

  async function load() {
    try {
      const data = await api('/api/feeds');
      body.replaceChildren(...data.feeds.map(row));
      const broken = data.feeds.filter(f => f.status === 'error' || f.status === 'retired').length;
      status.textContent = data.count
        ? `${data.count} feeds · ${broken} with an error · refreshed ${new Date().toISOString().slice(11, 19)} UTC`
        : 'No feed yet: `storywatch feeds import FILE` (OPML or one URL a line) or `storywatch feeds add URL`.';
    } catch (e) {
      status.textContent = 'cannot load feeds: ' + e.message;
    }
  }

  load();
  setInterval(load, REFRESH_MS);
})();
