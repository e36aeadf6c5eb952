// One story: its articles with the engine's evidence, groups, sources, alerts and timeline;
// articles joining it arrive live.
'use strict';

(() => {
  const {api, bars, el, fresh, live, safeUrl, time} = Storywatch;
  const storyId = decodeURIComponent(location.pathname.split('/').pop());
  // The story this page shows: the one storyId was merged into, once it was.
  let shownId = storyId;
  const byId = id => document.getElementById(id);
  let cursor = null;
  const listed = new Set();

  const pct = x => (x === null || x === undefined) ? 'n/a' : Number(x).toFixed(2);

  function articleItem(a) {
    const url = safeUrl(a.url);
    const title = url
      ? el('a', {href: url, rel: 'noopener noreferrer nofollow', target: '_blank'}, a.title)
      : el('span', {}, a.title);
    const why = a.why;
    const parts = [el('b', {}, why.decision)];
    if (why.decision === 'new') {
      parts.push(' · started this story');
    } else {
      parts.push(' · similarity ', el('b', {}, pct(why.similarity)),
        ' · lexical ', el('b', {}, pct(why.lexical_similarity)),
        ' · shared names ', el('b', {}, why.entity_share === null ? 'too few to judge' : pct(why.entity_share)));
    }
    const terms = el('div', {class: 'terms'}, ...(why.shared_terms || []).map(t => el('span', {}, t)));
    return el('li', {class: 'article', 'data-article-id': a.article_id},
      el('div', {}, title),
      el('div', {class: 'muted'}, a.source + ' · ' + time(a.time)),
      el('div', {class: 'why'}, ...parts), why.shared_terms && why.shared_terms.length ? terms : null);
  }

  function addArticles(articles, atTop) {
    for (const a of articles) {
      if (listed.has(a.article_id)) continue;
      listed.add(a.article_id);
      const item = articleItem(a);
      const list = byId('articles');
      if (atTop) { list.insertBefore(item, list.firstChild); fresh(item); }
      else list.appendChild(item);
    }
  }

  function showSummary(s) {
    document.title = 'Storywatch: ' + s.headline;
    byId('headline').textContent = s.headline;
    byId('keywords').textContent = s.keywords.join(' · ');
    byId('stats').replaceChildren(
      el('span', {}, el('b', {}, s.size), ' articles'),
      el('span', {}, el('b', {}, s.source_count), ' sources'),
      el('span', {}, el('b', {}, s.articles_last_hour), ' in the last hour'),
      el('span', {}, el('b', {}, s.articles_last_day), ' in the last day'),
      el('span', {}, 'first ', time(s.first_seen)),
      el('span', {}, 'last ', time(s.last_seen)));
  }

  function showStarted(a) {
    const note = byId('started-note');
    if (!a) { byId('started').hidden = true; return; }
    const closest = a.why.closest_story_not_joined;
    const first = ['Started by ', el('b', {}, a.title), ' (' + a.source + '). '];
    if (closest) {
      const link = el('a', {href: '/stories/' + encodeURIComponent(closest.story_id)}, closest.story_id);
      first.push('The closest story it did not join was ', link, ': score ', el('b', {}, pct(closest.score)),
        closest.entity_share === null ? ' (below the story threshold).' : ', shared names ' + pct(closest.entity_share) + '.');
    } else {
      first.push('No active story was close enough to compare.');
    }
    note.replaceChildren(...first.map(x => x instanceof Node ? x : document.createTextNode(x)));
  }

  function storyLink(id) {
    return el('a', {href: '/stories/' + encodeURIComponent(id)}, id);
  }

  // A story merged into another is shown as that one; a story that absorbed others says so.
  function showMerges(s) {
    const parts = [];
    if (s.merged_into) {
      parts.push('Story ', el('b', {}, storyId), ' was merged into this one (', storyLink(s.merged_into), '). ');
    }
    for (const m of s.merged_from || []) {
      parts.push('Absorbed ', storyLink(m.story_id), m.headline ? ' (' + m.headline + ')' : '',
        ' at ', time(m.time), ': ', el('b', {}, m.bridges === undefined ? '?' : m.bridges),
        ' bridging articles, score ', el('b', {}, pct(m.score)),
        ', centroids ', el('b', {}, pct(m.centroid_similarity)), '. ');
    }
    const note = byId('merges');
    note.hidden = !parts.length;
    note.replaceChildren(...parts.map(x => x instanceof Node ? x : document.createTextNode(x)));
  }

  function showAlerts(alerts) {
    byId('alerts').replaceChildren(...(alerts.length ? alerts.map(a => el('li', {class: 'alert'},
      el('b', {}, a.rule || a.type), ' · ', a.time || '', ' · ', (a.size || '?') + ' articles from ' + (a.source_count || '?') + ' sources'))
      : [el('li', {class: 'muted'}, 'No alert for this story yet.')]));
  }

  async function showTimeline() {
    const t = await api('/api/stories/' + encodeURIComponent(storyId) + '/timeline');
    const counts = t.buckets.map(b => b.articles);
    byId('timeline').replaceChildren(bars(counts, 'timeline', 600, 120));
    const minutes = t.bucket_seconds / 60;
    byId('timeline-note').textContent = `${counts.length} bars of ${minutes >= 60 ? minutes / 60 + ' h' : minutes + ' min'}, ` +
      `${time(t.buckets[0] ? t.buckets[0].start : t.first_seen)} to ${time(t.last_seen)}`;
    byId('sources').replaceChildren(...t.sources.map(s => el('tr', {},
      el('td', {}, s.source), el('td', {}, time(s.first_seen)), el('td', {class: 'n'}, s.articles))));
    showAlerts(t.alerts);
  }

  async function load() {
    try {
      const s = await api('/api/stories/' + encodeURIComponent(storyId));
      shownId = s.story_id;
      showSummary(s);
      showMerges(s);
      showStarted(s.started_by);
      addArticles(s.articles, false);
      cursor = s.next_cursor;
      byId('more').hidden = !cursor;
      byId('groups').replaceChildren(...s.groups.map(g => el('tr', {},
        el('td', {}, g.title), el('td', {class: 'n'}, g.articles))));
      byId('status').textContent = `${s.articles_seen} articles seen, the newest ${s.articles_kept} kept for this view`;
      byId('story').hidden = false;
      await showTimeline();
    } catch (e) {
      byId('status').textContent = e.status === 404 ? 'This story is not active (any more): ' + e.message : 'cannot load the story: ' + e.message;
    }
  }

  byId('more').addEventListener('click', async () => {
    const page = await api(`/api/stories/${encodeURIComponent(storyId)}/articles?cursor=${encodeURIComponent(cursor)}`);
    addArticles(page.articles, false);
    cursor = page.next_cursor;
    byId('more').hidden = !cursor;
  });

  let timelineTimer = null;
  function joined({story, article}) {
    if (story.story_id !== shownId) return;
    showSummary(story);
    addArticles([article], true);
    clearTimeout(timelineTimer);
    timelineTimer = setTimeout(showTimeline, 500);
  }

  load();
  live({
    story: joined,
    join: joined,
    // This story absorbed another, or was absorbed: the page shows the merged story now.
    merged: ({story, absorbed_id}) => {
      if (story.story_id !== shownId && absorbed_id !== shownId) return;
      listed.clear();
      byId('articles').replaceChildren();
      load();
    },
    alert: a => { if (a.story_id === shownId) showTimeline(); },
    reset: () => location.reload(),
  });
})();
