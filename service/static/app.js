// The browser client of the rooms service (PROTOCOL.md). User text only ever goes into textContent.
(function () {
  'use strict';

  const DIRECT = '@direct';
  const PAGE = 500; // the most messages one join or history answer carries (PROTOCOL.md)
  const FILL_MAX = 1500; // how far back a resumed room loads what it missed
  const KEEP = 2000; // messages kept per room
  const TRIMMED = 'Some older messages of this room are no longer stored.';
  const TOO_MANY = 'More messages arrived while you were away than this page loads; ' +
    'the latest are shown.';
  const me = document.getElementById('me').dataset.user;
  const $ = (id) => document.getElementById(id);
  const rooms = new Map(); // name -> {lastId, messages: [], unread, members: Set, notice}
  let current = null;
  let node = null;
  let loggingOut = false; // this page's own log-out ends its socket; the form's answer follows

  // Sticky routing: the front door hashes on this cookie, so this page keeps its node.
  if (!/(?:^|;\s*)node_key=/.test(document.cookie)) {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    const key = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    document.cookie = 'node_key=' + key + '; path=/; SameSite=Lax';
  }

  const params = new URLSearchParams(location.search);
  const transports = params.get('transport') === 'polling' ? ['polling'] : ['polling', 'websocket'];
  const socket = io({ transports: transports, withCredentials: true });

  function compareIds(a, b) {
    const [am, as] = a.split('-').map(Number);
    const [bm, bs] = b.split('-').map(Number);
    return am === bm ? as - bs : am - bm;
  }

  function room(name) {
    if (!rooms.has(name)) {
      rooms.set(name, {
        lastId: null, messages: [], unread: 0, members: new Set(), notice: '', seen: new Set(),
      });
    }
    return rooms.get(name);
  }

  function setState(kind, text) {
    const el = $('state');
    el.className = 'state ' + kind;
    el.textContent = text;
  }

  function notice(text) {
    const el = $('notice');
    el.textContent = text || '';
    el.hidden = !text;
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function messageItem(m) {
    const li = el('li');
    li.dataset.id = m.id;
    const when = new Date(m.ts).toLocaleTimeString();
    const author = m.from ? m.from + ' → ' + m.to : m.user;
    li.append(el('span', 'meta', when + ' · ' + m.node), el('strong', null, author + ': '),
      el('span', 'text', m.text));
    return li;
  }

  // Adds a message once: in a room, anything at or below the last id was already shown.
  function addMessage(name, m) {
    const r = room(name);
    if (name === DIRECT) {
      // direct ids come from each recipient's own inbox, so they are only unique per pair
      const key = m.from + '>' + m.to + '>' + m.id;
      if (r.seen.has(key)) return false;
      r.seen.add(key);
    } else {
      if (r.lastId && compareIds(m.id, r.lastId) <= 0) return false;
      r.lastId = m.id;
    }
    r.messages.push(m);
    if (r.messages.length > KEEP) r.messages.splice(0, r.messages.length - KEEP);
    if (name === current) {
      const list = $('messages');
      list.append(messageItem(m));
      list.scrollTop = list.scrollHeight;
    } else {
      r.unread += 1;
      renderRooms();
    }
    return true;
  }

  // Puts older messages (a resumed room's gap) in their place by id, each once.
  function insertOlder(name, list) {
    const r = room(name);
    const known = new Set(r.messages.map((m) => m.id));
    const fresh = list.filter((m) => !known.has(m.id));
    if (!fresh.length) return;
    r.messages = r.messages.concat(fresh).sort((a, b) => compareIds(a.id, b.id));
    if (r.messages.length > KEEP) r.messages.splice(0, r.messages.length - KEEP);
    if (name === current) show(name);
    else {
      r.unread += fresh.length;
      renderRooms();
    }
  }

  function setRoomNotice(name, text) {
    room(name).notice = text;
    if (name === current) notice(text);
  }

  // A join answers with at most PAGE messages, the newest; older ones after `since` are read
  // back page by page with `history` until the gap closes or retention is reached.
  function fillGap(name, since, before, loaded) {
    socket.emit('history', { room: name, before: before, limit: PAGE }, (ack) => {
      if (!ack || !ack.ok) {
        setRoomNotice(name, 'Could not load what you missed in #' + name + '.');
        return;
      }
      const batch = ack.messages;
      insertOlder(name, batch.filter((m) => compareIds(m.id, since) > 0));
      if (batch.length && compareIds(batch[0].id, since) <= 0) return; // gap closed
      if (batch.length < PAGE) setRoomNotice(name, TRIMMED);
      else if (loaded + batch.length >= FILL_MAX) setRoomNotice(name, TOO_MANY);
      else fillGap(name, since, batch[0].id, loaded + batch.length);
    });
  }

  function renderRooms() {
    const list = $('rooms');
    list.replaceChildren();
    for (const [name, r] of rooms) {
      const li = el('li', name === current ? 'active' : '');
      const open = el('button', 'room', name === DIRECT ? 'Direct messages' : '#' + name);
      open.type = 'button';
      open.addEventListener('click', () => show(name));
      li.append(open);
      if (r.unread) li.append(el('span', 'unread', String(r.unread)));
      if (name !== DIRECT) {
        const leave = el('button', 'leave', '×');
        leave.type = 'button';
        leave.title = 'leave ' + name;
        leave.addEventListener('click', () => leaveRoom(name));
        li.append(leave);
      }
      list.append(li);
    }
  }

  function renderPresence() {
    const list = $('presence');
    list.replaceChildren();
    const r = current && rooms.get(current);
    if (!r) return;
    for (const user of Array.from(r.members).sort()) list.append(el('li', null, user));
  }

  function show(name) {
    current = name;
    const r = room(name);
    r.unread = 0;
    $('room-title').textContent = name === DIRECT ? 'Direct messages' : '#' + name;
    $('messages').replaceChildren(...r.messages.map(messageItem));
    $('messages').scrollTop = $('messages').scrollHeight;
    const canSend = name !== DIRECT;
    $('send-text').disabled = !canSend;
    $('send-button').disabled = !canSend;
    notice(r.notice);
    renderRooms();
    renderPresence();
  }

  function joinRoom(name) {
    const r = room(name);
    const since = r.lastId; // null on a first join: then the newest messages are enough
    socket.emit('join', { room: name, since: since || '0-0' }, (ack) => {
      if (!ack || !ack.ok) {
        notice('Could not join ' + name + ': ' + (ack ? ack.error.message : 'no answer'));
        return;
      }
      r.members = new Set(ack.members);
      for (const m of ack.missed) addMessage(name, m);
      if (!current || current === name) show(name);
      else renderRooms();
      if (since && ack.truncated) {
        if (ack.missed.length === PAGE) fillGap(name, since, ack.missed[0].id, 0);
        else setRoomNotice(name, TRIMMED);
      }
    });
  }

  function leaveRoom(name) {
    socket.emit('leave', { room: name }, () => {
      rooms.delete(name);
      if (current === name) {
        current = null;
        const next = rooms.keys().next();
        if (!next.done) show(next.value);
        else {
          $('room-title').textContent = 'No room';
          $('messages').replaceChildren();
          renderPresence();
        }
      }
      renderRooms();
    });
  }

  function showConnected() {
    const transport = socket.io.engine.transport.name;
    document.body.dataset.transport = transport;
    setState('connected', 'connected' + (node ? ' to ' + node : '') + ' (' + transport + ')');
  }

  socket.on('connect', () => {
    showConnected();
    socket.io.engine.once('upgrade', showConnected);
    for (const name of rooms.keys()) if (name !== DIRECT) joinRoom(name);
  });
  socket.on('welcome', (w) => {
    node = w.node;
    document.body.dataset.node = w.node;
    showConnected();
  });
  socket.on('disconnect', (reason) => {
    node = null;
    delete document.body.dataset.node;
    if (reason === 'io server disconnect') {
      setState('offline', 'offline: the server ended this session');
      if (!loggingOut) location.reload();
    } else {
      setState('reconnecting', 'reconnecting…');
    }
  });
  socket.io.on('reconnect_attempt', () => setState('reconnecting', 'reconnecting…'));
  socket.on('connect_error', (err) => {
    setState('offline', 'offline: ' + err.message);
    if (/credentials|token|log in/.test(err.message)) location.reload();
  });
  $('logout').form.addEventListener('submit', () => { loggingOut = true; });
  window.addEventListener('offline', () => setState('offline', 'offline: no network'));
  socket.on('message', (m) => addMessage(m.room, m));
  socket.on('direct', (m) => addMessage(DIRECT, m));
  socket.on('presence', (p) => {
    const r = rooms.get(p.room);
    if (!r) return;
    if (p.action === 'join') r.members.add(p.user);
    else r.members.delete(p.user);
    if (p.room === current) renderPresence();
  });

  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('join-room').value.trim();
    if (!name) return;
    $('join-room').value = '';
    current = name;
    joinRoom(name);
  });

  $('send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('send-text').value;
    if (!text || !current || current === DIRECT) return;
    const clientId = me + '-' + Date.now() + '-' + Math.random().toString(36).slice(2, 8);
    socket.emit('send', { room: current, text: text, client_id: clientId }, (ack) => {
      if (ack && ack.ok) $('send-text').value = '';
      else notice('Not sent: ' + (ack ? ack.error.message : 'no answer'));
    });
  });

  $('direct-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const to = $('direct-to').value.trim();
    const text = $('direct-text').value;
    socket.emit('direct', { to: to, text: text }, (ack) => {
      if (ack && ack.ok) {
        $('direct-text').value = '';
        room(DIRECT);
        addMessage(DIRECT, { id: ack.id, ts: ack.ts, from: me, to: to, text: text, node: node });
        show(DIRECT);
      } else {
        notice('Not sent: ' + (ack ? ack.error.message : 'no answer'));
      }
    });
  });
})();
