// Recent alerts of the built-in "emerging" rule, newest first; new ones arrive live.
'use strict';

(() => {
  const {api, el, fresh, live} = Storywatch;
  const list = document.getElementById('alerts');
  const status = document.getElementById('status');
  const seen = new Set();

  function item(a) {
    return el('li', {class: 'alert', 'data-alert-id': a.id},
      el('div', {}, el('a', {href: '/stories/' + encodeURIComponent(a.story_id)}, a.headline || a.story_id)),
      el('div', {class: 'muted'}, `${a.rule || a.type} · ${a.time || ''} · ${a.size} articles from ${a.source_count} sources`),
      el('div', {class: 'muted'}, (a.sources || []).join(', ')));
  }

  function add(a, atTop) {
    if (seen.has(a.id)) return;
    seen.add(a.id);
    const node = item(a);
    if (atTop) { list.insertBefore(node, list.firstChild); fresh(node); }
    else list.appendChild(node);
    status.textContent = `${seen.size} recent alerts (the emerging-story rule) · live`;
  }

  async function load() {
    try {
      const data = await api('/api/alerts/recent?limit=200');
      list.replaceChildren();
      seen.clear();
      data.alerts.forEach(a => add(a, false));
      if (!data.alerts.length) status.textContent = 'No alert yet: a story emerges with enough articles from enough sources.';
    } catch (e) {
      status.textContent = 'cannot load alerts: ' + e.message;
    }
  }

  load();
  live({alert: a => add(a, true), reset: load});
})();
