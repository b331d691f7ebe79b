// The drops probe: senders and receivers in a few rooms, through a proxy that cuts the network
// again and again (loadtests/drops_proxy.py), against this service or the Node.js reference; the
// same program for both, so the comparison is fair. It records; loadtests/drops_accounting.py
// computes the figures.
//
// Each client is a socket.io-client 4.8 socket on its own account, WebSocket only, with the
// client's own reconnection (jittered exponential backoff, --delay to --delay-max ms).
//
// Senders keep an outbox: a message a second per --rate, each with a client_id of its own, sent
// one at a time in order; when the ack is lost (no answer in --ack-timeout ms, or the connection
// dropped first) the same message is sent again with the same client_id once the sender is back
// in its room, until it is acknowledged.
//
// Receivers record every `message` as it comes, de-duplicating nothing. After each (re)connect:
//   --mode resume (this service): join {room, since: the newest id received} and record `missed`;
//   --mode recovery (the reference with connection state recovery): when `socket.recovered`, the
//     server restored the room and replays what was missed, so nothing is asked; otherwise join
//     {room, since} as in resume (the reference's join supports `since`).
// Every client's first `since` is the id of a seed message stored in each room before anyone
// joins, so a receiver whose first join was lost still asks from the beginning.
//
// Phases, one JSON line each on stdout: ready (every client connected and joined once), sending
// (for --duration s), settling (no new messages; the caller stops dropping now), done. Settling
// ends when every outbox is empty, every client is connected and in its room, and no message
// arrived for --quiet s; or after --settle s. The record goes to --out.
'use strict';

const fs = require('fs');
const { io } = require('socket.io-client');

const PASSWORD = 'drops-probe-password';
const READY_TIMEOUT_S = 120;

function options(argv) {
  const given = {};
  for (let i = 2; i < argv.length; i += 2) given[argv[i].replace(/^--/, '')] = argv[i + 1];
  const number = (name, fallback) => (given[name] === undefined ? fallback : Number(given[name]));
  if (!given.url || !given.out || !['resume', 'recovery'].includes(given.mode)) {
    throw new Error('usage: drops_probe.js --url SOCKETIO_URL --http ACCOUNTS_URL '
      + '--mode resume|recovery --out FILE [--rooms K --senders S --receivers R --duration s '
      + '--rate per_s --ack-timeout ms --delay ms --delay-max ms --settle s --quiet s]');
  }
  return {
    url: given.url, http: given.http || given.url, mode: given.mode, out: given.out,
    run: given.run || Math.random().toString(36).slice(2, 8),
    rooms: number('rooms', 4), senders: number('senders', 2), receivers: number('receivers', 10),
    duration: number('duration', 30), rate: number('rate', 5),
    ackTimeout: number('ack-timeout', 10000), delay: number('delay', 250),
    delayMax: number('delay-max', 2000), settle: number('settle', 60), quiet: number('quiet', 2),
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (phase, extra) => console.log(JSON.stringify({ phase, at: Date.now(), ...extra }));

function newer(a, b) { // is id a after id b (`ms-seq` ids, either system)
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am > bm || (am === bm && as > bs);
}

async function post(base, path, body) {
  const answer = await fetch(base + path, { method: 'POST', body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' } });
  return { status: answer.status, body: await answer.json().catch(() => null) };
}

async function token(base, username) {
  await post(base, '/api/register', { username, password: PASSWORD });
  const answer = await post(base, '/api/token', { username, password: PASSWORD });
  if (answer.status !== 200) throw new Error(`no token for ${username}: ${answer.status}`);
  return answer.body.token;
}

// `done(answer)` with the answer through the acknowledgement, or {lost: true} when it did not
// come in `ms` or the connection dropped first (socket.io-client fails pending acks of a
// timeout() emit on disconnect). `done` runs in the ack's own turn, before any packet behind the
// ack is handled: a promise's continuation would run only after every packet of the same read,
// and record a join's `missed` after live messages the server sent after it.
function call(socket, event, payload, ms, done) {
  socket.timeout(ms).emit(event, payload, (err, answer) => done(err ? { lost: true } : answer));
}

function ask(socket, event, payload, ms) {
  return new Promise((resolve) => call(socket, event, payload, ms, resolve));
}

// One socket in one room: (re)joins after each connect as its mode says and records what
// happened. `ready` is true while it is connected and in its room.
class Member {
  constructor(config, name, room, tokenValue, since, onMessage) {
    this.config = config;
    this.name = name;
    this.room = room;
    this.newest = since;
    this.onMessage = onMessage; // null: a sender, which records nothing
    this.events = []; // [kind, ms, ...]: c connect, j join answered, d disconnect, e error
    this.connects = 0;
    this.ready = false;
    this.waiters = [];
    this.socket = io(config.url, {
      transports: ['websocket'], auth: { token: tokenValue }, query: { node_key: name },
      reconnectionDelay: config.delay, reconnectionDelayMax: config.delayMax,
      randomizationFactor: 0.5, timeout: 5000,
    });
    this.socket.on('connect', () => this.connected());
    this.socket.on('disconnect', (reason) => {
      this.ready = false;
      this.events.push(['d', Date.now(), reason]);
      if (reason === 'io server disconnect') this.socket.connect(); // not retried by the client
    });
    this.socket.on('connect_error', () => {
      if (!this.socket.active) setTimeout(() => this.socket.connect(), this.config.delayMax);
    });
    this.socket.on('message', (message) => {
      if (onMessage && message.room === this.room) this.received(message, 'event');
    });
  }

  received(message, via) {
    if (!this.newest || newer(message.id, this.newest)) this.newest = message.id;
    this.onMessage(message, via);
  }

  connected() {
    this.connects += 1;
    const recovered = Boolean(this.socket.recovered);
    this.events.push(['c', Date.now(), recovered ? 1 : 0]);
    if (this.config.mode === 'recovery' && recovered) return this.becameReady();
    return this.join();
  }

  join() {
    const socket = this.socket;
    const attempt = this.connects;
    const current = () => socket.connected && this.connects === attempt;
    const payload = this.newest ? { room: this.room, since: this.newest } : { room: this.room };
    call(socket, 'join', payload, this.config.ackTimeout, (answer) => {
      if (!current()) return; // dropped meanwhile: the next connect joins
      if (answer.lost || !answer.ok) {
        this.events.push(['e', Date.now(), answer.lost ? 'lost' : answer.error.code]);
        setTimeout(() => current() && this.join(), 250);
        return;
      }
      this.events.push(['j', Date.now(), answer.missed.length, answer.truncated ? 1 : 0]);
      if (this.onMessage) answer.missed.forEach((message) => this.received(message, 'missed'));
      this.becameReady();
    });
  }

  becameReady() {
    this.ready = true;
    for (const wake of this.waiters.splice(0)) wake();
  }

  untilReady() {
    return this.ready ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  close() { this.socket.close(); }
}

class Sender {
  constructor(config, member) {
    this.config = config;
    this.member = member;
    this.prefix = `${config.run}-${member.name}-`;
    this.messages = []; // [client_id, id or null, attempts, {error code: count}, ack's ts]
    this.outbox = [];
    this.wake = null;
  }

  add(text) {
    const entry = [this.prefix + this.messages.length, null, 0, {}];
    this.messages.push(entry);
    this.outbox.push({ entry, text });
    if (this.wake) this.wake();
    return entry;
  }

  async run(stopping) {
    for (;;) {
      if (this.outbox.length === 0) {
        if (stopping()) return;
        await new Promise((resolve) => { this.wake = resolve; });
        this.wake = null;
        continue;
      }
      const { entry, text } = this.outbox[0];
      await this.member.untilReady();
      if (!this.member.ready) continue; // only ever emit while connected: never buffered
      entry[2] += 1;
      const answer = await ask(this.member.socket, 'send',
        { room: this.member.room, text, client_id: entry[0] }, this.config.ackTimeout);
      if (answer.lost) continue;
      if (!answer.ok) {
        entry[3][answer.error.code] = (entry[3][answer.error.code] || 0) + 1;
        await sleep(200);
        continue;
      }
      entry[1] = answer.id;
      entry.push(answer.ts);
      this.outbox.shift();
    }
  }
}

async function main() {
  const config = options(process.argv);
  const rooms = Array.from({ length: config.rooms }, (_, k) => `drops-${config.run}-${k}`);
  const names = { senders: [], receivers: [] };
  rooms.forEach((room, k) => {
    for (let i = 0; i < config.senders; i += 1) {
      names.senders.push([`d${config.run}s${k}x${i}`, room]);
    }
    for (let i = 0; i < config.receivers; i += 1) {
      names.receivers.push([`d${config.run}r${k}x${i}`, room]);
    }
  });
  const tokens = {};
  const everyone = [...names.senders, ...names.receivers];
  for (let i = 0; i < everyone.length; i += 4) { // a few at a time: passwords are slow hashes
    await Promise.all(everyone.slice(i, i + 4).map(async ([name]) => {
      tokens[name] = await token(config.http, name);
    }));
  }

  let lastMessageAt = Date.now();
  const senders = names.senders.map(([name, room]) =>
    new Sender(config, new Member(config, name, room, tokens[name], null, null)));
  const seeds = {};
  await Promise.all(rooms.map(async (room) => { // the first sender of each room stores the seed
    const sender = senders.find((one) => one.member.room === room);
    const entry = sender.add('seed');
    await sender.run(() => true);
    seeds[room] = { client_id: entry[0], id: entry[1] };
  }));

  const receivers = names.receivers.map(([name, room]) => {
    const record = { name, room, messages: [] };
    const member = new Member(config, name, room, tokens[name], seeds[room].id, (message, via) => {
      lastMessageAt = Date.now();
      record.messages.push([message.id, message.client_id || null, via, lastMessageAt]);
    });
    record.member = member;
    return record;
  });
  const members = [...senders.map((sender) => sender.member), ...receivers.map((r) => r.member)];
  await Promise.race([Promise.all(members.map((member) => member.untilReady())),
    sleep(READY_TIMEOUT_S * 1000).then(() => { throw new Error('clients not ready in time'); })]);
  say('ready', { clients: members.length });

  let sending = true;
  const started = Date.now();
  say('sending', { duration_s: config.duration });
  senders.forEach((sender) => sender.run(() => !sending));
  const tickers = senders.map((sender) => {
    let seq = 0;
    const every = 1000 / config.rate;
    const tick = () => { sender.add(`m ${seq}`); seq += 1; };
    let timer = null;
    const first = setTimeout(() => { tick(); timer = setInterval(tick, every); },
      Math.random() * every);
    return () => { clearTimeout(first); clearInterval(timer); };
  });
  await sleep(config.duration * 1000);
  tickers.forEach((stop) => stop());
  sending = false;
  senders.forEach((sender) => sender.wake && sender.wake());
  const sentFor = (Date.now() - started) / 1000;
  say('settling', { sent_for_s: sentFor });

  const settleBy = Date.now() + config.settle * 1000;
  let settled = false;
  while (Date.now() < settleBy) {
    const drained = senders.every((sender) => sender.outbox.length === 0);
    const ready = members.every((member) => member.ready);
    if (drained && ready && Date.now() - lastMessageAt >= config.quiet * 1000) {
      settled = true;
      break;
    }
    await sleep(100);
  }
  const settleFor = (Date.now() - started) / 1000 - sentFor;
  members.forEach((member) => member.close()); // outboxes still waiting for a ready end here

  const record = {
    mode: config.mode, run: config.run, started_ms: started, sent_for_s: sentFor,
    settle_for_s: settleFor, settled,
    config: { rooms: config.rooms, senders: config.senders, receivers: config.receivers,
      rate: config.rate, ack_timeout_ms: config.ackTimeout, delay_ms: config.delay,
      delay_max_ms: config.delayMax },
    seeds,
    senders: senders.map((sender) => ({ name: sender.member.name, room: sender.member.room,
      messages: sender.messages.filter((entry) => entry[0] !== seeds[sender.member.room].client_id),
      events: sender.member.events })),
    receivers: receivers.map((r) => ({ name: r.name, room: r.room, messages: r.messages,
      events: r.member.events })),
  };
  fs.writeFileSync(config.out, JSON.stringify(record));
  say('done', { settled });
  process.exit(0);
}

main().catch((error) => { console.error(error); process.exit(1); });
