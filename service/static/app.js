// The browser client of the rooms service (PROTOCOL.md). User text only ever goes into textContent.
(function () {
  'use strict';

  const PAGE = 500; // the most messages one join or history answer carries (PROTOCOL.md)
  const OLDER = 50; // messages loaded each time the list is scrolled to its top
  const FILL_MAX = 1500; // how far back a resumed room loads what it missed
  const KEEP = 2000; // messages kept per room or conversation
  const UNREAD_MAX = 1000; // the server counts unread messages up to here
  const ACK_TIMEOUT_MS = 8000; // a send unanswered this long goes again, with its client_id
  const RETRY_MS = 2000;
  const RETRY_MAX_MS = 30000;
  // how long to wait before attempt `n` (0, 1, ...) of something that failed: doubling from
  // RETRY_MS up to RETRY_MAX_MS, each drawn from 50-150% of that, so that thousands of pages that
  // failed together (a node drained, the network dropped) do not come back together
  const backoff = (n) => Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** n) * (0.5 + Math.random());
  const TYPING_EVERY_MS = 3000; // while typing, say so this often
  const TYPING_SHOWN_MS = 5000; // someone else's typing shows this long after they said so
  const READ_DELAY_MS = 300;
  const REFRESH_AT = 0.75; // the token is refreshed after this share of its lifetime
  const TIMER_MAX_MS = 86400000; // a longer setTimeout would fire at once (2^31 ms at most)
  const GIVE_UP_MS = 9 * 60000; // a send unanswered this long is given up: the server
  // recognises a repeated client_id for 10 minutes, so a later retry could store it twice
  const TRIMMED = 'Some older messages of this room are no longer stored.';
  const TOO_MANY = 'More messages arrived while you were away than this page loads; ' +
    'the latest are shown.';
  const me = document.getElementById('me').dataset.user;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const SHOWN = 'rooms.shown.' + me; // which view this browser showed last
  // '#room' or '@user' -> {kind, name, messages, ids, lastId, readId, unread, members, ...}
  const views = new Map();
  const outbox = new Map(); // client_id -> a send not yet answered
  let current = null;
  let node = null;
  let inboxLastId = null; // where the inbox resumes: only moved by messages the inbox delivered
  let inboxResumed = false; // whether this connection resumed the inbox (live ones move it after)
  let restored = false; // whether this connection rejoined its rooms (sends wait for it)
  let loggingOut = false; // this page's own log-out ends its socket; the form's answer follows
  let expired = false;
  let refusedConnects = 0; // connects refused in a row (connect_error): each waits longer
  let refreshTimer = null;
  let readTimer = null;
  let syncTimer = null;
  let renderQueued = false;

  // Sticky routing: the front door hashes on this cookie, so this page keeps its node.
  if (!/(?:^|;\s*)node_key=/.test(document.cookie)) {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    const key = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    document.cookie = 'node_key=' + key + '; path=/; SameSite=Lax';
  }

  // ---- credentials: a token of this browser session, refreshed before it expires ------------

  function fetchToken() {
    return fetch('/api/session/token', {
      method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf },
    }).then((response) => {
      if (response.status === 401 || response.status === 403) {
        location.reload(); // logged out elsewhere: the page shows the log-in form
        throw new Error('logged out');
      }
      if (!response.ok) throw new Error('HTTP ' + response.status);
      return response.json();
    }).then((body) => {
      scheduleRefresh(body.expires_in);
      return body.token;
    });
  }

  function scheduleRefresh(expiresIn) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh,
      Math.min(TIMER_MAX_MS, Math.max(1000, expiresIn * REFRESH_AT * 1000)));
  }

  function refresh() {
    if (!socket.connected) return; // the next connection fetches a token of its own
    fetchToken().then((token) => {
      socket.emit('refresh', { token: token }, (ack) => {
        if (ack && ack.ok) {
          document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
        } else {
          refreshTimer = setTimeout(refresh, RETRY_MS);
        }
      });
    }, () => { refreshTimer = setTimeout(refresh, RETRY_MS); });
  }

  const params = new URLSearchParams(location.search);
  const transports = params.get('transport') === 'polling' ? ['polling'] : ['polling', 'websocket'];
  const socket = io({
    transports: transports,
    withCredentials: true,
    // reconnection after a lost connection: jittered exponential backoff, from about 0.5 s
    // (a drained node's clients come back within a second) up to 10 s
    reconnectionDelay: 500,
    reconnectionDelayMax: 10000,
    randomizationFactor: 0.5,
    // without a token (the request failed) the session cookie still signs the page in
    auth: (cb) => { fetchToken().then((token) => cb({ token: token }), () => cb({})); },
  });

  // ---- views: a room or a conversation ------------------------------------------------------

  function compareIds(a, b) {
    const [am, as] = a.split('-').map(Number);
    const [bm, bs] = b.split('-').map(Number);
    return am === bm ? as - bs : am - bm;
  }

  function newer(a, b) {
    return !b || compareIds(a, b) > 0;
  }

  function view(key) {
    if (!views.has(key)) {
      views.set(key, {
        key: key, kind: key[0] === '#' ? 'room' : 'with', name: key.slice(1), messages: [],
        ids: new Set(), lastId: null, readId: null, unread: 0, members: new Set(), notice: '',
        complete: false, loadingOlder: false, joining: false, typing: new Map(), typingSent: 0,
        countedTo: null, // the newest id the server's unread count covered
      });
    }
    return views.get(key);
  }

  function author(m) {
    return m.from !== undefined ? m.from : m.user;
  }

  function looking(v) {
    return v.key === current && document.visibilityState === 'visible';
  }

  // Adds messages to a view, each once, in id order; answers those that were new. Only
  // messages that came as events (or in answers that resume) move `lastId`, the position a
  // room resumes from: a send's own answer can come before older messages still on their way.
  function addMessages(v, list, advance = true) {
    if (advance) {
      const newest = list.reduce((found, m) => (newer(m.id, found) ? m.id : found), null);
      if (newest && newer(newest, v.lastId)) v.lastId = newest;
    }
    const fresh = list.filter((m) => !v.ids.has(m.id));
    if (!fresh.length) return fresh;
    for (const m of fresh) {
      v.ids.add(m.id);
      if (m.client_id && outbox.delete(m.client_id)) queueRender();
      if (v.typing.has(author(m))) stopTyping(v, author(m));
    }
    const older = v.messages.length && compareIds(fresh[0].id, v.messages[0].id) < 0;
    v.messages = v.messages.concat(fresh).sort((a, b) => compareIds(a.id, b.id));
    if (v.messages.length > KEEP && !older) { // what was scrolled back to stays
      for (const m of v.messages.splice(0, v.messages.length - KEEP)) v.ids.delete(m.id);
      v.complete = false;
    }
    if (v.key === current) {
      queueRender();
      markReadSoon();
    }
    return fresh;
  }

  // Live messages of others count as unread unless their view is being looked at.
  function countUnread(v, fresh) {
    if (looking(v)) return;
    const unseen = fresh.filter((m) => author(m) !== me && newer(m.id, v.readId)
      && newer(m.id, v.countedTo)).length;
    if (unseen) {
      v.unread = Math.min(UNREAD_MAX, v.unread + unseen);
      renderNav();
    }
  }

  function setNotice(v, text) {
    v.notice = text;
    if (v.key === current) notice(text);
  }

  // ---- rendering ------------------------------------------------------------------------------

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function notice(text) {
    const e = $('notice');
    e.textContent = text || '';
    e.hidden = !text;
  }

  function setState(kind, text) {
    const e = $('state');
    e.className = 'state ' + kind;
    e.textContent = text;
  }

  function dayOf(ts) {
    const d = new Date(ts);
    return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate();
  }

  function dayLabel(ts) {
    const day = dayOf(ts);
    if (day === dayOf(Date.now())) return 'Today';
    if (day === dayOf(Date.now() - 86400000)) return 'Yesterday';
    return new Date(ts).toLocaleDateString(undefined,
      { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
  }

  function messageItem(m) {
    const li = el('li', 'message');
    li.dataset.id = m.id;
    const when = new Date(m.ts).toLocaleTimeString();
    const who = m.from !== undefined ? m.from + ' → ' + m.to : m.user;
    li.append(el('span', 'meta', when + ' · ' + m.node), el('strong', null, who + ': '),
      el('span', 'text', m.text));
    return li;
  }

  function pendingItem(entry) {
    const li = el('li', 'message pending');
    li.dataset.clientId = entry.clientId;
    li.append(el('span', 'meta', 'sending…'), el('strong', null, me + ': '),
      el('span', 'text', entry.text));
    return li;
  }

  function items(v) {
    const out = [];
    let day = null;
    if (v.complete) {
      out.push(el('li', 'start', v.messages.length ? 'The beginning of ' + title(v)
        : 'No messages in ' + title(v) + ' yet'));
    }
    for (const m of v.messages) {
      if (dayOf(m.ts) !== day) {
        day = dayOf(m.ts);
        const separator = el('li', 'day', dayLabel(m.ts));
        separator.setAttribute('role', 'separator');
        out.push(separator);
      }
      out.push(messageItem(m));
    }
    for (const entry of outbox.values()) if (entry.key === v.key) out.push(pendingItem(entry));
    return out;
  }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderMessages(false);
    });
  }

  // Redraws the open view; the list stays at the bottom if it was there, else where it was.
  function renderMessages(toBottom) {
    const list = $('messages');
    const v = current && views.get(current);
    const fromBottom = list.scrollHeight - list.scrollTop;
    const atBottom = fromBottom - list.clientHeight < 40;
    list.replaceChildren(...(v ? items(v) : []));
    list.scrollTop = toBottom || atBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
    if (v) fillScreen(v);
  }

  function title(v) {
    return (v.kind === 'room' ? '#' : '@') + v.name;
  }

  function unreadBadge(count) {
    return el('span', 'unread', count >= UNREAD_MAX ? UNREAD_MAX + '+' : String(count));
  }

  function navItem(v) {
    const li = el('li', v.key === current ? 'active' : '');
    li.dataset.key = v.key;
    const open = el('button', v.kind === 'room' ? 'room' : 'conversation', title(v));
    open.type = 'button';
    open.addEventListener('click', () => show(v.key));
    li.append(open);
    if (v.unread) li.append(unreadBadge(v.unread));
    return li;
  }

  function renderNav() {
    const rooms = [];
    const conversations = [];
    for (const v of views.values()) (v.kind === 'room' ? rooms : conversations).push(v);
    rooms.sort((a, b) => a.name.localeCompare(b.name));
    const lastTs = (v) => (v.messages.length ? v.messages[v.messages.length - 1].ts : 0);
    conversations.sort((a, b) => lastTs(b) - lastTs(a) || a.name.localeCompare(b.name));
    $('rooms').replaceChildren(...rooms.map((v) => {
      const li = navItem(v);
      const leave = el('button', 'leave', '×');
      leave.type = 'button';
      leave.title = 'leave ' + v.name;
      leave.addEventListener('click', () => leaveRoom(v));
      li.append(leave);
      return li;
    }));
    $('conversations').replaceChildren(...conversations.map(navItem));
    let total = 0;
    for (const v of views.values()) total += v.unread;
    document.title = (total ? '(' + total + ') ' : '') + 'Rooms';
  }

  function renderPresence() {
    const v = current && views.get(current);
    const names = v && v.kind === 'room' ? Array.from(v.members).sort() : [];
    $('presence').replaceChildren(...names.map((user) => el('li', null, user)));
  }

  function renderTyping() {
    const v = current && views.get(current);
    const names = v ? Array.from(v.typing.keys()).sort() : [];
    let text = '';
    if (names.length === 1) text = names[0] + ' is typing…';
    else if (names.length > 1 && names.length <= 3) text = names.join(', ') + ' are typing…';
    else if (names.length > 3) text = 'Several people are typing…';
    $('typing').textContent = text;
  }

  function show(key) {
    current = key;
    const v = view(key);
    try {
      localStorage.setItem(SHOWN, key); // a reload opens the same room or conversation
    } catch (error) { /* storage is off: a reload opens the first one */ }
    $('room-title').textContent = title(v);
    $('send-text').disabled = false;
    $('send-button').disabled = false;
    $('send-text').placeholder = 'Write to ' + title(v) + ', Enter sends';
    notice(v.notice);
    renderMessages(true);
    renderNav();
    renderPresence();
    renderTyping();
    markReadSoon();
  }

  function showSomething() {
    let saved = null;
    try {
      saved = localStorage.getItem(SHOWN);
    } catch (error) { /* storage is off */ }
    if (saved && views.has(saved)) {
      show(saved);
      return;
    }
    const first = views.keys().next();
    if (!first.done) {
      show(first.value);
      return;
    }
    current = null;
    $('room-title').textContent = 'No room';
    $('send-text').disabled = true;
    $('send-button').disabled = true;
    renderMessages(true);
    renderNav();
    renderPresence();
    renderTyping();
  }

  // ---- older messages -------------------------------------------------------------------------

  // Loads older messages while the open view does not fill its list (nothing to scroll yet).
  function fillScreen(v) {
    const list = $('messages');
    if (v.key === current && !v.complete && !v.joining
        && list.scrollHeight <= list.clientHeight + 40) {
      loadOlder(v);
    }
  }

  function loadOlder(v) {
    if (v.complete || v.loadingOlder || !socket.connected) return;
    v.loadingOlder = true;
    const payload = v.kind === 'room' ? { room: v.name, limit: OLDER } : { with: v.name, limit: OLDER };
    if (v.messages.length) payload.before = v.messages[0].id;
    socket.timeout(ACK_TIMEOUT_MS).emit(v.kind === 'room' ? 'history' : 'direct_history', payload,
      (err, ack) => {
      v.loadingOlder = false;
      if (err) return; // the connection went: scrolling up asks again
      if (!ack || !ack.ok) {
        setNotice(v, 'Could not load older messages: ' + reason(ack));
        return;
      }
      if (ack.messages.length < OLDER) v.complete = true;
      if (!addMessages(v, ack.messages, false).length && v.key === current) queueRender();
    });
  }

  $('messages').addEventListener('scroll', () => {
    const list = $('messages');
    const v = current && views.get(current);
    if (!v) return;
    if (list.scrollTop < 60) loadOlder(v);
    if (list.scrollHeight - list.scrollTop - list.clientHeight < 40) markReadSoon();
  });

  // A join answers with at most PAGE messages, the newest; older ones after `since` are read
  // back page by page with `history` until the gap closes or retention is reached.
  // Until the gap is closed (or given up on) the room resumes from `since`, not past the gap.
  function fillGap(v, since, before, loaded, upTo) {
    socket.timeout(ACK_TIMEOUT_MS).emit('history', { room: v.name, before: before, limit: PAGE },
      (err, ack) => {
      if (err || !ack || !ack.ok) { // the next connection's join starts again from `since`
        setNotice(v, 'Could not load what you missed in #' + v.name + '.');
        return;
      }
      const batch = ack.messages;
      addMessages(v, batch.filter((m) => compareIds(m.id, since) > 0), false);
      const closed = batch.length && compareIds(batch[0].id, since) <= 0;
      if (!closed && batch.length < PAGE) setNotice(v, TRIMMED);
      else if (!closed && loaded + batch.length >= FILL_MAX) setNotice(v, TOO_MANY);
      else if (!closed) {
        fillGap(v, since, batch[0].id, loaded + batch.length, upTo);
        return;
      }
      if (newer(upTo, v.lastId)) v.lastId = upTo;
    });
  }

  // ---- read positions: the same on every device -------------------------------------------------

  function markReadSoon() {
    clearTimeout(readTimer);
    readTimer = setTimeout(markRead, READ_DELAY_MS);
  }

  // The open view's newest message counts as read once the page is visible and at the bottom.
  function markRead() {
    const v = current && views.get(current);
    const list = $('messages');
    if (!v || !looking(v) || !socket.connected) return;
    if (list.scrollHeight - list.scrollTop - list.clientHeight > 40) return;
    if (v.unread) {
      v.unread = 0;
      renderNav();
    }
    const newest = v.messages[v.messages.length - 1];
    if (!newest || !newer(newest.id, v.readId)) return;
    const payload = v.kind === 'room' ? { room: v.name, id: newest.id } : { with: v.name, id: newest.id };
    socket.emit('read', payload, (ack) => {
      if (ack && ack.ok && ack.id && newer(ack.id, v.readId)) v.readId = ack.id;
    });
  }

  document.addEventListener('visibilitychange', markReadSoon);

  // The server's counts cover what was stored up to their newest id (`countedTo`): live
  // messages count on top only when newer.
  function applyRooms(list) {
    for (const r of list) {
      const v = view('#' + r.room);
      v.unread = looking(v) ? 0 : r.unread;
      if (r.last_id && newer(r.last_id, v.countedTo)) v.countedTo = r.last_id;
    }
  }

  function applyConversations(list) {
    for (const c of list) {
      const v = view('@' + c.with);
      if (c.last) addMessages(v, [c.last]);
      v.unread = looking(v) ? 0 : c.unread;
      if (c.last && newer(c.last.id, v.countedTo)) v.countedTo = c.last.id;
    }
  }

  // Another device read up to `id`: count what is left here if all of it is loaded, else ask.
  function readElsewhere(v, id) {
    if (newer(id, v.readId)) v.readId = id;
    const first = v.messages[0];
    if (v.complete || (first && compareIds(first.id, v.readId) <= 0)) {
      const left = v.messages.filter((m) => author(m) !== me && newer(m.id, v.readId)).length;
      v.unread = Math.min(UNREAD_MAX, left);
      renderNav();
    } else {
      syncCounts();
    }
  }

  // Unread counts as the server keeps them (after another device read something, say).
  function syncCounts() {
    clearTimeout(syncTimer);
    syncTimer = setTimeout(() => {
      socket.emit('rooms', {}, (ack) => {
        if (ack && ack.ok) {
          applyRooms(ack.rooms);
          renderNav();
        }
      });
      socket.emit('conversations', {}, (ack) => {
        if (ack && ack.ok) {
          applyConversations(ack.conversations);
          renderNav();
        }
      });
    }, 100);
  }

  // ---- restoring rooms and conversations on every (re)connection --------------------------------

  function reason(ack) {
    return ack ? ack.error.message : 'no answer';
  }

  function joinRoom(v, done) {
    const since = v.lastId; // null on a first join: then the newest messages are enough
    v.joining = true;
    socket.emit('join', { room: v.name, since: since || '0-0' }, (ack) => {
      v.joining = false;
      if (!ack || !ack.ok) {
        setNotice(v, 'Could not join #' + v.name + ': ' + reason(ack));
        if (done) done(false);
        return;
      }
      v.members = new Set(ack.members);
      if (ack.read && newer(ack.read, v.readId)) v.readId = ack.read;
      if (!since) v.complete = ack.missed.length < PAGE;
      const gap = since && ack.truncated && ack.missed.length === PAGE;
      addMessages(v, ack.missed, !gap);
      if (gap) fillGap(v, since, ack.missed[0].id, 0, ack.missed[PAGE - 1].id);
      else if (since && ack.truncated) setNotice(v, TRIMMED);
      if (v.key === current) {
        renderPresence();
        queueRender();
      }
      renderNav();
      if (done) done(true);
    });
  }

  function restoreRooms(done) {
    socket.emit('rooms', {}, (ack) => {
      if (!ack || !ack.ok) {
        notice('Could not load your rooms: ' + reason(ack));
        done();
        return;
      }
      const listed = new Set(ack.rooms.map((r) => '#' + r.room));
      for (const key of Array.from(views.keys())) {
        if (key[0] === '#' && !listed.has(key)) views.delete(key); // left on another device
      }
      if (current && !views.has(current)) current = null;
      applyRooms(ack.rooms);
      let waiting = ack.rooms.length;
      if (!waiting) done();
      for (const r of ack.rooms) {
        joinRoom(view('#' + r.room), () => {
          waiting -= 1;
          if (!waiting) done();
        });
      }
      renderNav();
    });
  }

  // `resumes`: whether the inbox delivered it (a resume, or live after this connection's resume),
  // so that the inbox resumes after it; a send's own answer does not count.
  function takeDirect(m, live, resumes) {
    const v = view('@' + (m.from === me ? m.to : m.from));
    if (resumes && newer(m.id, inboxLastId)) inboxLastId = m.id;
    const fresh = addMessages(v, [m]);
    if (live) countUnread(v, fresh);
    renderNav();
  }

  function restoreConversations(done, attempt = 0) {
    const on = socket.id;
    socket.timeout(ACK_TIMEOUT_MS).emit('inbox', inboxLastId ? { since: inboxLastId } : {},
      (err, ack) => {
      if (socket.id !== on) return; // a new connection resumes for itself
      if (err || !ack || !ack.ok) { // again, a little later: nothing may be skipped
        notice('Could not load your direct messages: ' + (err ? 'no answer' : reason(ack)));
        if (attempt === 0) done();
        setTimeout(() => restoreConversations(() => {}, attempt + 1), backoff(attempt));
        return;
      }
      inboxResumed = true;
      if (ack.truncated) { // too much to catch up on: conversations load again as they open
        for (const v of views.values()) {
          if (v.kind === 'with') Object.assign(v, { messages: [], ids: new Set(), complete: false });
        }
      }
      for (const m of ack.messages) takeDirect(m, false, true);
      socket.emit('conversations', {}, (answer) => {
        if (answer && answer.ok) applyConversations(answer.conversations);
        if (attempt === 0) done();
        else renderNav();
      });
    });
  }

  function restore() {
    restored = false;
    inboxResumed = false;
    let waiting = 2;
    const done = () => {
      waiting -= 1;
      if (waiting) return;
      restored = true;
      renderNav();
      if (!current) showSomething();
      else show(current);
      flushOutbox();
      syncCounts(); // what was stored while the joins were answered
    };
    restoreRooms(done);
    restoreConversations(done);
  }

  // ---- sending: every send has a client_id and is retried with it until answered ---------------

  function newClientId() {
    return me + '-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10);
  }

  function send(v, text, refused) {
    const clientId = newClientId();
    const payload = v.kind === 'room' ? { room: v.name, text: text, client_id: clientId }
      : { to: v.name, text: text, client_id: clientId };
    const entry = { key: v.key, clientId: clientId, text: text, payload: payload,
      event: v.kind === 'room' ? 'send' : 'direct', refused: refused, firstAt: Date.now(),
      attempt: 0, timer: null };
    outbox.set(clientId, entry);
    queueRender();
    attempt(entry);
  }

  function giveUp(entry, why) {
    clearTimeout(entry.timer);
    outbox.delete(entry.clientId);
    queueRender();
    if (entry.refused) entry.refused();
    notice('Not sent: ' + why + ' (“' + entry.text.slice(0, 80) + '”)');
  }

  // One attempt at a time per send, only once this connection rejoined its rooms; each is
  // answered, or times out and goes again with the same client_id, until GIVE_UP_MS.
  function attempt(entry) {
    clearTimeout(entry.timer);
    if (!outbox.has(entry.clientId) || !socket.connected || !restored) return; // on reconnect
    if (Date.now() - entry.firstAt > GIVE_UP_MS) {
      giveUp(entry, 'no answer for 9 minutes; send it again if it did not arrive');
      return;
    }
    const number = ++entry.attempt;
    const again = (delay) => { entry.timer = setTimeout(() => attempt(entry), delay); };
    socket.timeout(ACK_TIMEOUT_MS).emit(entry.event, entry.payload, (err, ack) => {
      if (!outbox.has(entry.clientId) || entry.attempt !== number) return; // superseded
      if (err) {
        again(0); // no answer: the same client_id again (on the next connection, if this went)
      } else if (ack.ok) {
        outbox.delete(entry.clientId);
        if (entry.event === 'direct') { // the sending connection gets its own direct only here
          takeDirect({ id: ack.id, ts: ack.ts, from: me, to: entry.payload.to, text: entry.text,
            node: node, client_id: entry.clientId }, false, false);
        } else if (views.has(entry.key)) { // shown now; the event, when it comes, is the same
          addMessages(views.get(entry.key), [{ id: ack.id, room: entry.payload.room, user: me,
            text: entry.text, ts: ack.ts, node: node, client_id: entry.clientId }], false);
        }
        queueRender();
      } else if (ack.error.code === 'unavailable' || ack.error.code === 'rate_limited'
          || (ack.error.code === 'forbidden' && (views.get(entry.key) || {}).joining)) {
        again(backoff(number - 1));
      } else {
        giveUp(entry, ack.error.message);
        if (ack.error.code === 'forbidden' && entry.event === 'send') { // left on another device
          restoreRooms(() => (current && views.has(current) ? show(current) : showSomething()));
        }
      }
    });
  }

  function flushOutbox() {
    for (const entry of outbox.values()) attempt(entry);
  }

  // ---- typing ------------------------------------------------------------------------------------

  function stopTyping(v, user) {
    clearTimeout(v.typing.get(user));
    v.typing.delete(user);
    if (v.key === current) renderTyping();
  }

  $('send-text').addEventListener('input', () => {
    const v = current && views.get(current);
    if (!v || v.kind !== 'room' || !socket.connected || !$('send-text').value) return;
    if (Date.now() - v.typingSent < TYPING_EVERY_MS) return;
    v.typingSent = Date.now();
    socket.emit('typing', { room: v.name });
  });

  // ---- the connection ----------------------------------------------------------------------------

  function showConnected() {
    const transport = socket.io.engine.transport.name;
    document.body.dataset.transport = transport;
    setState('connected', 'connected' + (node ? ' to ' + node : '') + ' (' + transport + ')');
  }

  socket.on('connect', () => {
    refusedConnects = 0;
    showConnected();
    socket.io.engine.once('upgrade', showConnected);
    restore();
  });
  socket.on('welcome', (w) => {
    node = w.node;
    document.body.dataset.node = w.node;
    showConnected();
  });
  socket.on('expired', () => { expired = true; });
  socket.on('disconnect', (why) => {
    node = null;
    delete document.body.dataset.node;
    if (why === 'io server disconnect' && expired) { // its token ran out: connect with a new one
      expired = false;
      setState('reconnecting', 'reconnecting…');
      socket.connect();
    } else if (why === 'io server disconnect') {
      setState('offline', 'offline: the server ended this session');
      if (!loggingOut) location.reload();
    } else {
      setState('reconnecting', 'reconnecting…');
    }
  });
  socket.io.on('reconnect_attempt', () => setState('reconnecting', 'reconnecting…'));
  socket.on('connect_error', (err) => {
    setState('offline', 'offline: ' + err.message);
    if (/credentials|log in|logged out/.test(err.message)) location.reload();
    else if (!socket.active) { // a refused token: again, later each time
      setTimeout(() => socket.connect(), backoff(refusedConnects++));
    }
  });
  $('logout').form.addEventListener('submit', () => { loggingOut = true; });
  window.addEventListener('offline', () => setState('offline', 'offline: no network'));

  socket.on('message', (m) => {
    const v = views.get('#' + m.room);
    if (!v) return;
    countUnread(v, addMessages(v, [m]));
  });
  socket.on('direct', (m) => takeDirect(m, true, inboxResumed));
  socket.on('read', (r) => {
    const v = views.get(r.room !== undefined ? '#' + r.room : '@' + r.with);
    if (v) readElsewhere(v, r.id);
  });
  socket.on('typing', (t) => {
    const v = views.get('#' + t.room);
    if (!v || t.user === me) return;
    clearTimeout(v.typing.get(t.user));
    v.typing.set(t.user, setTimeout(() => stopTyping(v, t.user), TYPING_SHOWN_MS));
    if (v.key === current) renderTyping();
  });
  // The app took this user out of a room (on every device): the room leaves the list, with a
  // notice; its unsent messages are dropped (the server refuses them now).
  socket.on('removed', (r) => {
    const key = '#' + r.room;
    if (!views.has(key)) return; // not a room of this page: nothing to take out
    for (const entry of Array.from(outbox.values())) {
      if (entry.key !== key) continue;
      clearTimeout(entry.timer);
      outbox.delete(entry.clientId);
    }
    views.delete(key);
    if (current === key) showSomething();
    else renderNav();
    notice('You were removed from #' + r.room + (r.reason ? ': ' + r.reason : '') + '.');
  });
  socket.on('presence', (p) => {
    const v = views.get('#' + p.room);
    if (!v) return;
    if (p.action === 'join') v.members.add(p.user);
    else v.members.delete(p.user);
    if (v.key === current) renderPresence();
  });

  // ---- forms ---------------------------------------------------------------------------------------

  function leaveRoom(v) {
    socket.emit('leave', { room: v.name }, (ack) => {
      if (!ack || !ack.ok) {
        notice('Could not leave #' + v.name + ': ' + reason(ack));
        return;
      }
      views.delete(v.key);
      if (current === v.key) showSomething();
      else renderNav();
    });
  }

  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('join-room').value.trim();
    if (!name) return;
    $('join-room').value = '';
    const v = view('#' + name);
    joinRoom(v, (joined) => { if (!joined && !v.messages.length) views.delete(v.key); });
    show(v.key);
  });

  $('send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('send-text').value;
    const v = current && views.get(current);
    if (!text || !v) return;
    $('send-text').value = '';
    v.typingSent = 0;
    send(v, text);
  });

  $('direct-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const to = $('direct-to').value.trim();
    const text = $('direct-text').value;
    if (!to || !text) return;
    $('direct-text').value = '';
    const known = views.has('@' + to);
    const v = view('@' + to);
    show(v.key);
    send(v, text, () => { // refused: no such user, say
      if (known) return;
      views.delete(v.key);
      showSomething();
    });
  });
})();
