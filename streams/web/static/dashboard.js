// The story list: filters kept in the URL, the first page from /api/stories, then live
// updates pushed by /api/events/stream (rows are updated and re-ranked in place).
'use strict';

(() => {
  const {api, bars, el, fresh, live, time} = Storywatch;
  const PAGE = 50;
  const FIELDS = ['q', 'source', 'min_size', 'sort'];
  const list = document.getElementById('stories');
  const status = document.getElementById('status');
  const more = document.getElementById('more');
  const shown = new Map(); // story id -> {story, row}
  let cursor = null;
  let loaded = 0; // rows loaded from the API
  let total = 0;
  let generation = 0;

  function filters() {
    const params = new URLSearchParams(location.search);
    const state = {};
    for (const name of FIELDS) state[name] = params.get(name) || '';
    if (!state.sort) state.sort = 'growth';
    return state;
  }

  function showFilters(state) {
    for (const name of FIELDS) document.getElementById(name).value = state[name];
  }

  function query(state, extra) {
    const params = new URLSearchParams();
    for (const name of FIELDS) if (state[name] && !(name === 'sort' && state[name] === 'growth')) params.set(name, state[name]);
    for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
    return params.toString();
  }

  // The same ordering as the API's sort keys.
  const KEYS = {
    growth: s => [-s.articles_last_hour, -s.articles_last_day, -s.size, -s.last_seen],
    size: s => [-s.size, -s.last_seen],
    recent: s => [-s.last_seen],
    new: s => [-s.first_seen],
    sources: s => [-s.source_count, -s.size],
  };

  function compare(a, b) {
    const key = KEYS[filters().sort] || KEYS.growth;
    const ka = key(a), kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] - kb[i];
    return a.story_id < b.story_id ? -1 : a.story_id > b.story_id ? 1 : 0;
  }

  const words = text => (text.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || []).filter(w => w.length > 1);

  // What the API's filters keep, for a story pushed live.
  function matches(story, article, state) {
    if (state.min_size && story.size < Number(state.min_size)) return false;
    if (state.q) {
      const have = new Set(words([story.headline, ...story.keywords].join(' ')));
      if (!words(state.q).every(w => have.has(w))) return false;
    }
    if (state.source) {
      const want = state.source.toLowerCase();
      const sources = story.sources.map(s => s.toLowerCase());
      if (!sources.includes(want) && !(article && article.source.toLowerCase() === want) && !shown.has(story.story_id)) return false;
    }
    return true;
  }

  function row(story) {
    const link = el('a', {href: '/stories/' + encodeURIComponent(story.story_id), class: 'headline'}, story.headline);
    const left = el('div', {},
      link, story.alerts ? el('span', {class: 'badge', title: 'alerts'}, 'emerging') : null,
      el('div', {class: 'kw'}, story.keywords.join(' · ')),
      el('div', {class: 'kw'}, story.sources.join(', ') + (story.source_count > story.sources.length ? ' …' : '')));
    const nums = el('div', {class: 'nums'},
      el('span', {title: 'articles'}, el('b', {}, story.size), ' articles'),
      el('span', {title: 'articles in the last hour / day'}, el('b', {}, story.articles_last_hour), ' 1h · ', el('b', {}, story.articles_last_day), ' 24h'),
      el('span', {title: 'distinct sources'}, el('b', {}, story.source_count), ' sources'));
    const right = el('div', {class: 'right'}, bars(story.spark, 'spark', 96, 24), nums,
      el('div', {class: 'kw', title: 'first / last article'}, time(story.first_seen) + ' → ' + time(story.last_seen).slice(11)));
    const item = el('li', {class: 'story', 'data-story-id': story.story_id}, left, right);
    return item;
  }

  function renderStatus() {
    const state = filters();
    const narrowed = state.q || state.source || state.min_size;
    status.textContent = `${total} active stories${narrowed ? '; showing ' + shown.size + ' that match' : ''}` +
      (document.body.dataset.live === 'connected' ? ' · live' : ' · not live');
  }

  function place(entry) {
    // Keep rows in order: move the row before the first shown story that ranks after it.
    const ordered = [...shown.values()].sort((a, b) => compare(a.story, b.story));
    const index = ordered.indexOf(entry);
    const next = ordered[index + 1];
    list.insertBefore(entry.row, next ? next.row : null);
  }

  function upsert(story, article) {
    const state = filters();
    const known = shown.get(story.story_id);
    if (!known && !matches(story, article, state)) return;
    if (known && !matches(story, null, state) && !state.source) {
      known.row.remove();
      shown.delete(story.story_id);
      return;
    }
    const entry = {story, row: row(story)};
    if (known) known.row.replaceWith(entry.row);
    shown.set(story.story_id, entry);
    place(entry);
    fresh(entry.row);
    // While more pages exist, keep the list at what was loaded: the last row leaves (the
    // API serves it on the next page).
    while (cursor && list.children.length > loaded) {
      const last = list.lastElementChild;
      shown.delete(last.dataset.storyId);
      last.remove();
    }
  }

  async function load(append) {
    const mine = ++generation;
    const state = filters();
    const extra = {limit: PAGE};
    if (append && cursor) extra.cursor = cursor;
    try {
      const data = await api('/api/stories?' + query(state, extra));
      if (mine !== generation) return; // a newer filter won
      if (!append) { shown.clear(); list.replaceChildren(); loaded = 0; }
      loaded += data.stories.length;
      for (const story of data.stories) {
        const entry = {story, row: row(story)};
        shown.set(story.story_id, entry);
        list.appendChild(entry.row);
      }
      cursor = data.next_cursor;
      more.hidden = !cursor;
      total = data.active_stories;
      renderStatus();
      if (!data.stories.length && !append) status.textContent += ' · nothing matches yet';
    } catch (e) {
      status.textContent = 'cannot load stories: ' + e.message;
    }
  }

  let typing = null;
  document.getElementById('filters').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      const state = {};
      for (const name of FIELDS) state[name] = document.getElementById(name).value.trim();
      history.replaceState(null, '', location.pathname + (query(state) ? '?' + query(state) : ''));
      cursor = null;
      load(false);
    }, 250);
  });
  document.getElementById('filters').addEventListener('submit', ev => ev.preventDefault());
  more.addEventListener('click', () => load(true));
  window.addEventListener('popstate', () => { showFilters(filters()); load(false); });

  showFilters(filters());
  load(false);
  live({
    connected: renderStatus,
    disconnected: renderStatus,
    story: ({story, article}) => { total += 1; upsert(story, article); renderStatus(); },
    join: ({story, article}) => { upsert(story, article); renderStatus(); },
    // Two stories became one: the absorbed one leaves the list, the survivor is updated.
    merged: ({story, absorbed_id}) => {
      const gone = shown.get(absorbed_id);
      if (gone) { gone.row.remove(); shown.delete(absorbed_id); }
      total -= 1;
      upsert(story, null);
      renderStatus();
    },
    alert: alert => {
      const entry = shown.get(alert.story_id);
      if (entry) upsert({...entry.story, alerts: entry.story.alerts + 1}, null);
    },
    reset: () => load(false),
  });
})();
