// The bench's reference system: what people would otherwise deploy. Node.js Socket.IO with the
// official Redis adapter, one process per node behind the same nginx, speaking the events of
// PROTOCOL.md that the load tests use (plus leave, presence, direct), storing room messages in a
// Redis stream so ids, `since` and history mean the same as in the Python service.
//
// Written the way such a service usually is: store, then emit through the adapter. Unlike the
// Python service it does not order deliveries across nodes or hold live messages during a join;
// the bench reports what that costs in order, not only in speed.
//
// ADAPTER=streams is what a Node user would pick for flaky networks (the bench's drops part):
// @socket.io/redis-streams-adapter with Socket.IO's connection state recovery, which keeps a
// disconnected socket's rooms and data in Redis for MAX_DISCONNECTION_MS and, when the client
// comes back in time, restores them and replays the broadcasts it missed (`socket.recovered`).
// Without ADAPTER, the reference is the Pub/Sub adapter and nothing else changes.
'use strict';

const http = require('http');
const crypto = require('crypto');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const streams = require('@socket.io/redis-streams-adapter');
const { createClient } = require('redis');

const NODE = process.env.NODE_NAME || 'node-1';
const PORT = Number(process.env.PORT || 5001);
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379/0';
const SECRET = process.env.SECRET_KEY || 'reference-secret-key';
const TOKEN_TTL_S = 43200;
const ROOM = /^[A-Za-z0-9_.-]{1,64}$/;
const USER = /^[A-Za-z0-9_.-]{3,32}$/;
const STREAMS = process.env.ADAPTER === 'streams';
const MAX_DISCONNECTION_MS = Number(process.env.MAX_DISCONNECTION_MS || 2 * 60 * 1000);

const redis = createClient({ url: REDIS_URL });
const pub = redis.duplicate();
const sub = redis.duplicate();

function sign(user) {
  const body = Buffer.from(JSON.stringify({ u: user, e: Date.now() / 1000 + TOKEN_TTL_S }))
    .toString('base64url');
  const mac = crypto.createHmac('sha256', SECRET).update(body).digest('base64url');
  return body + '.' + mac;
}

function verify(token) {
  if (typeof token !== 'string' || !token.includes('.')) return null;
  const [body, mac] = token.split('.');
  const expected = crypto.createHmac('sha256', SECRET).update(body).digest('base64url');
  if (mac.length !== expected.length ||
      !crypto.timingSafeEqual(Buffer.from(mac), Buffer.from(expected))) return null;
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
  return claims.e > Date.now() / 1000 ? claims.u : null;
}

function hashPassword(password, salt) {
  return crypto.scryptSync(password, salt, 32).toString('hex');
}

function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function error(code, message) {
  return { ok: false, error: { code, message } };
}

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; if (data.length > 65536) req.destroy(); });
    req.on('end', () => { try { resolve(JSON.parse(data)); } catch { resolve(null); } });
  });
}

async function handleHttp(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/healthz') return json(res, 200, { node: NODE, ok: true });
  if (url.pathname === '/readyz') return json(res, 200, { node: NODE, ready: true });
  if (req.method === 'POST' && (url.pathname === '/api/register' || url.pathname === '/api/token')) {
    const body = await readBody(req);
    if (!body || !USER.test(body.username || '') || typeof body.password !== 'string') {
      return json(res, 400, { error: { code: 'bad_request', message: 'username and password' } });
    }
    const key = 'ref:user:' + body.username;
    if (url.pathname === '/api/register') {
      const salt = crypto.randomBytes(16).toString('hex');
      const created = await redis.hSetNX(key, 'salt', salt);
      if (!created) return json(res, 409, { error: { code: 'conflict', message: 'taken' } });
      await redis.hSet(key, 'hash', hashPassword(body.password, salt));
      return json(res, 201, { username: body.username });
    }
    const user = await redis.hGetAll(key);
    if (!user.salt || hashPassword(body.password, user.salt) !== user.hash) {
      return json(res, 401, { error: { code: 'unauthorized', message: 'wrong credentials' } });
    }
    return json(res, 200, { token: sign(body.username), expires_in: TOKEN_TTL_S });
  }
  if (url.pathname === '/api/cluster') {
    const bearer = (req.headers.authorization || '').replace(/^Bearer /, '');
    if (!verify(bearer)) return json(res, 401, { error: { code: 'unauthorized', message: 'token' } });
    const nodes = await redis.zRangeByScore('ref:nodes', Date.now() - 10000, '+inf');
    return json(res, 200, { nodes: nodes.map((node) => ({ node })) });
  }
  return json(res, 404, { error: { code: 'not_found', message: 'no such path' } });
}

function toMessage(room, [id, fields]) {
  const message = { id, room, user: fields.u, text: fields.t, ts: Number(id.split('-')[0]),
    node: fields.n };
  if (fields.c !== undefined) message.client_id = fields.c;
  return message;
}

function entries(list) {
  return list.map(({ id, message }) => [id, message]);
}

async function main() {
  await Promise.all([redis.connect(), pub.connect(), sub.connect()]);
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/socket.io/')) return; // Socket.IO's own handler answers
    handleHttp(req, res).catch(() => json(res, 500, { error: { code: 'unavailable',
      message: 'internal error' } }));
  });
  const options = { adapter: STREAMS ? streams.createAdapter(pub) : createAdapter(pub, sub),
    maxHttpBufferSize: 65536, cors: { origin: true, credentials: true } };
  if (STREAMS) {
    // as documented (socket.io/docs/v4/connection-state-recovery): a recovered socket keeps the
    // user its middleware put in socket.data, so the middleware is skipped
    options.connectionStateRecovery = { maxDisconnectionDuration: MAX_DISCONNECTION_MS,
      skipMiddlewares: true };
  }
  const io = new Server(server, options);

  io.use((socket, next) => {
    const user = verify(socket.handshake.auth && socket.handshake.auth.token);
    if (!user) return next(new Error('bad token'));
    socket.data.user = user;
    return next();
  });

  io.on('connection', (socket) => {
    const user = socket.data.user;
    // a recovered socket is back in its rooms: present there again, it may send without a join
    const joined = new Set([...socket.rooms].filter((room) => room.startsWith('r:'))
      .map((room) => room.slice(2)));
    for (const room of joined) redis.sAdd('ref:room:' + room + ':users', user).catch(() => {});
    socket.join('u:' + user);
    socket.emit('welcome', { user, node: NODE, sid: socket.id });

    socket.on('join', async (payload, ack) => {
      if (typeof ack !== 'function') return;
      if (!payload || !ROOM.test(payload.room || '')) return ack(error('bad_request', 'room'));
      const room = payload.room;
      socket.join('r:' + room);
      joined.add(room);
      await redis.sAdd('ref:room:' + room + ':users', user);
      const members = (await redis.sMembers('ref:room:' + room + ':users')).sort();
      let missed = [];
      if (payload.since) {
        missed = entries(await redis.xRange('ref:room:' + room, '(' + payload.since, '+',
          { COUNT: 500 })).map((entry) => toMessage(room, entry));
      }
      socket.to('r:' + room).emit('presence', { room, user, action: 'join' });
      return ack({ ok: true, room, node: NODE, members, missed, truncated: false });
    });

    socket.on('leave', async (payload, ack) => {
      const room = payload && payload.room;
      if (joined.delete(room)) {
        socket.leave('r:' + room);
        await redis.sRem('ref:room:' + room + ':users', user);
        socket.to('r:' + room).emit('presence', { room, user, action: 'leave' });
      }
      if (typeof ack === 'function') ack({ ok: true, room });
    });

    socket.on('send', async (payload, ack) => {
      if (typeof ack !== 'function') return;
      if (!payload || !joined.has(payload.room)) return ack(error('forbidden', 'join first'));
      if (typeof payload.text !== 'string' || !payload.text || payload.text.length > 4000) {
        return ack(error('bad_request', 'text'));
      }
      const fields = { u: user, t: payload.text, n: NODE };
      if (typeof payload.client_id === 'string') fields.c = payload.client_id;
      const id = await redis.xAdd('ref:room:' + payload.room, '*', fields,
        { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 10000 } });
      io.to('r:' + payload.room).emit('message', toMessage(payload.room, [id, fields]));
      return ack({ ok: true, id, ts: Number(id.split('-')[0]) });
    });

    socket.on('history', async (payload, ack) => {
      if (typeof ack !== 'function') return;
      if (!payload || !ROOM.test(payload.room || '')) return ack(error('bad_request', 'room'));
      const limit = Math.min(Number(payload.limit) || 50, 500);
      const newest = payload.before ? '(' + payload.before : '+';
      const list = entries(await redis.xRevRange('ref:room:' + payload.room, newest, '-',
        { COUNT: limit })).reverse();
      return ack({ ok: true, room: payload.room,
        messages: list.map((entry) => toMessage(payload.room, entry)) });
    });

    socket.on('presence', async (payload, ack) => {
      if (typeof ack !== 'function') return;
      const members = (await redis.sMembers('ref:room:' + payload.room + ':users')).sort();
      return ack({ ok: true, room: payload.room, members });
    });

    socket.on('direct', async (payload, ack) => {
      if (typeof ack !== 'function') return;
      if (!payload || !USER.test(payload.to || '')) return ack(error('bad_request', 'to'));
      const id = await redis.xAdd('ref:inbox:' + payload.to, '*', { f: user, t: payload.text });
      const message = { id, from: user, to: payload.to, text: payload.text,
        ts: Number(id.split('-')[0]), node: NODE };
      socket.to('u:' + payload.to).to('u:' + user).emit('direct', message);
      return ack({ ok: true, id, ts: message.ts });
    });

    socket.on('disconnect', () => {
      for (const room of joined) redis.sRem('ref:room:' + room + ':users', user).catch(() => {});
    });
  });

  const beat = () => redis.zAdd('ref:nodes', { score: Date.now(), value: NODE }).catch(() => {});
  beat();
  setInterval(beat, 2000);
  server.listen(PORT, '127.0.0.1', () => console.log(`${NODE} listening on ${PORT}`));
  process.on('SIGTERM', () => process.exit(0));
}

main().catch((err) => { console.error(err); process.exit(1); });
