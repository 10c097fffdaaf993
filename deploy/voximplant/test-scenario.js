// Runs web-callback.js against a fake VoxEngine (calls, Net.httpRequestAsync, ApplicationStorage,
// Logger, timers) and checks what it does and what it reports: the call order, the events'
// bodies against docs/PROTOCOLS.md ("Voximplant scenario events"), their Standard Webhooks
// signatures (verified with node:crypto, as relay-ingress verifies them), retries, the secret's
// sources, and that the log never shows a number or the secret.
//
//   node deploy/voximplant/test-scenario.js
//
// The fake follows the VoxEngine typings (voximplant/voxengine-ci, typings/voxengine.d.ts); how
// the real platform orders and repeats call events is not known here, so the fake also repeats
// events (a hangup that reports Disconnected or Failed afterwards) to check they are ignored.

'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const vm = require('node:vm');

const SOURCE = fs.readFileSync(path.join(__dirname, 'web-callback.js'), 'utf8');
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const CUSTOM = {
  session: 'callback:0190e1e0-0000-7000-8000-000000000001',
  callback: '+15551230000',
  target: '+15557654321',
  caller_id: '+15550001111',
  events_url: 'https://relay.example.com/v1/voximplant/events',
};
const T0 = Date.UTC(2026, 11, 4, 10, 0, 0);

class FakeCall {
  constructor(env, number, callerid) {
    this.env = env;
    this.number_ = number;
    this.callerid_ = callerid;
    this.id_ = `call-${env.calls.length + 1}`;
    this.listeners = {};
    this.hungUp = false;
  }
  id() {
    return this.id_;
  }
  number() {
    return this.number_;
  }
  addEventListener(event, fn) {
    (this.listeners[event] = this.listeners[event] || []).push(fn);
  }
  emit(event, extra) {
    for (const fn of this.listeners[event] || []) fn({ call: this, name: event, id: this.id_, ...extra });
  }
  hangup() {
    this.hungUp = true;
    // The platform may report our own hangup afterwards: it must change nothing.
    const echo = this.env.hangupEcho;
    if (echo) setTimeout(() => this.emit(echo.event, echo.extra), 0);
  }
}

/** A scenario session. `respond(n, request)` answers the n-th HTTP request (1-based). */
function start(opts = {}) {
  const env = {
    calls: [],
    requests: [],
    logs: [],
    media: [],
    terminated: false,
    requestsAtTerminate: null,
    hangupEcho: opts.hangupEcho || null,
    listeners: {},
    clock: { now: T0 },
  };
  const respond = opts.respond || (() => ({ code: 200, text: '{"accepted":1}' }));
  const context = {
    Modules: { ApplicationStorage: 'applicationstorage' },
    require: () => undefined,
    Logger: { write: (m) => env.logs.push(String(m)) },
    AppEvents: { Started: 'Application.Started', Terminating: 'Application.Terminating' },
    CallEvents: {
      Connected: 'Call.Connected',
      Disconnected: 'Call.Disconnected',
      Failed: 'Call.Failed',
      Ringing: 'Call.Ringing',
    },
    VoxEngine: {
      addEventListener: (event, fn) => {
        env.listeners[event] = fn;
      },
      customData: () => ('customData' in opts ? opts.customData : JSON.stringify(CUSTOM)),
      callPSTN: (number, callerid) => {
        const call = new FakeCall(env, number, callerid);
        env.calls.push(call);
        return call;
      },
      sendMediaBetween: (a, b) => env.media.push([a.id(), b.id()]),
      terminate: () => {
        env.terminated = true;
        env.requestsAtTerminate = env.requests.length;
      },
    },
    Net: {
      httpRequestAsync: (url, options) => {
        const request = { url, options, at: env.clock.now };
        env.requests.push(request);
        const answer = respond(env.requests.length, request);
        return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
      },
    },
    // VoxEngine's timers, 100 times faster.
    setTimeout: (fn, ms) => setTimeout(fn, Math.ceil((ms || 0) / 100)),
    clearTimeout: (id) => clearTimeout(id),
  };
  if (opts.storage !== undefined) {
    context.ApplicationStorage = {
      get: (key) =>
        opts.storage instanceof Error
          ? Promise.reject(opts.storage)
          : Promise.resolve(key in opts.storage ? { key, value: opts.storage[key], expireAt: 0 } : null),
    };
  }
  if (opts.globalSecret !== undefined) context.RELAY_EVENTS_SECRET = opts.globalSecret;
  else if (opts.storage === undefined) context.RELAY_EVENTS_SECRET = SECRET;
  vm.createContext(context);
  vm.runInContext('Date.now = function () { return __clock.now; };', Object.assign(context, { __clock: env.clock }));
  vm.runInContext(SOURCE, context, { filename: 'web-callback.js' });
  env.advance = (seconds) => {
    env.clock.now += seconds * 1000;
  };
  env.listeners['Application.Started']({ name: 'Application.Started', sessionId: 4242, accountId: 100001 });
  return env;
}

/** Lets queued promises and (fast) timers run. */
async function settle(ms = 60) {
  for (let i = 0; i < 4; i++) await new Promise((r) => setTimeout(r, ms / 4));
}

/** Waits until the scenario terminated (or fails after a while). */
async function untilTerminated(env) {
  for (let i = 0; i < 200 && !env.terminated; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(env.terminated, 'the session terminates');
}

/** Verifies a request as relay-ingress does, and returns its parsed body. */
function verified(request, secret = SECRET) {
  const { url, options } = request;
  assert.equal(url, CUSTOM.events_url);
  assert.equal(options.method, 'POST');
  assert.equal(options.headers['Content-Type'], 'application/json');
  const id = options.headers['webhook-id'];
  const timestamp = options.headers['webhook-timestamp'];
  assert.match(id, /^vox_100001_4242_\d+$/);
  assert.match(timestamp, /^\d+$/);
  assert.equal(Number(timestamp), Math.floor(request.at / 1000), 'signed at send time');
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected =
    'v1,' + crypto.createHmac('sha256', key).update(`${id}.${timestamp}.`).update(Buffer.from(options.postData, 'utf8')).digest('base64');
  assert.equal(options.headers['webhook-signature'], expected, 'the signature verifies');
  assert.match(options.postData, /^[\x00-\x7e]*$/, 'the body is ASCII');
  return JSON.parse(options.postData);
}

function bodies(env) {
  return env.requests.map((r) => verified(r));
}

function summary(events) {
  return events.map((e) => `${e.kind}/${e.leg}`);
}

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

function checkCommon(event) {
  assert.equal(event.relay_session, CUSTOM.session);
  assert.equal('session_id' in event, false, 'relay_session instead of session_id');
  assert.equal(event.direction, 'outbound');
  assert.ok(['customer', 'agent'].includes(event.leg));
  assert.ok(['started', 'ringing', 'answered', 'ended', 'missed', 'failed', 'recording_ready'].includes(event.kind));
  assert.match(event.time, RFC3339);
  if ('from' in event) assert.equal(event.from, CUSTOM.caller_id);
  if (event.leg === 'agent') assert.equal(event.to, CUSTOM.callback);
  else assert.equal(event.to, CUSTOM.target);
}

function checkLogs(env) {
  const text = env.logs.join('\n');
  for (const number of [CUSTOM.callback, CUSTOM.target, CUSTOM.caller_id]) {
    assert.equal(text.includes(number), false, `the log shows ${number}`);
    assert.equal(text.includes(number.slice(1)), false, `the log shows ${number} without +`);
  }
  assert.equal(text.includes(SECRET.slice(6)), false, 'the log shows the secret');
}

test('answered call: user first, then the target, bridged; the target hangs up', async () => {
  const env = start({ hangupEcho: { event: 'Call.Disconnected', extra: { internalCode: 200, reason: 'Normal' } } });
  await settle();
  assert.equal(env.calls.length, 1, 'only the user is called first');
  assert.equal(env.calls[0].number(), CUSTOM.callback);
  assert.equal(env.calls[0].callerid_, CUSTOM.caller_id);
  const [user] = env.calls;
  user.emit('Call.Ringing', {});
  user.emit('Call.Ringing', {}); // repeated progress: one `ringing`
  env.advance(5);
  user.emit('Call.Connected', {});
  await settle();
  assert.equal(env.calls.length, 2, 'the target is called once the user answered');
  const target = env.calls[1];
  assert.equal(target.number(), CUSTOM.target);
  assert.equal(target.callerid_, CUSTOM.caller_id);
  assert.deepEqual(env.media, [['call-1', 'call-2']]);
  target.emit('Call.Ringing', {});
  env.advance(10);
  target.emit('Call.Connected', {});
  env.advance(65);
  target.emit('Call.Disconnected', { internalCode: 200, reason: 'Normal', duration: 65 });
  await untilTerminated(env);
  await settle();
  assert.ok(user.hungUp, 'the other leg is hung up');
  assert.equal(target.hungUp, false);

  const events = bodies(env);
  assert.equal(env.requestsAtTerminate, events.length, 'terminated after every event was sent');
  assert.deepEqual(summary(events), [
    'started/agent',
    'ringing/agent',
    'started/customer',
    'ringing/customer',
    'answered/customer',
    'ended/customer',
    'ended/agent',
  ]);
  events.forEach(checkCommon);
  assert.equal(events[0].call_id, 'call-1');
  assert.equal(events[2].call_id, 'call-2');
  const answered = events[4];
  assert.equal(answered.time, '2026-12-04T10:00:15Z');
  assert.equal('agent' in answered, false, 'the customer answered, not an agent');
  const ended = events[5];
  assert.equal(ended.duration, 65);
  assert.equal(ended.time, '2026-12-04T10:01:20Z');
  assert.equal('status' in ended, false);
  assert.equal('answered_at' in ended, false, 'the answer was delivered already');
  const agentEnded = events[6];
  assert.equal(agentEnded.duration, 75);
  assert.equal(agentEnded.reason, 'the target leg ended');
  const ids = env.requests.map((r) => r.options.headers['webhook-id']);
  assert.equal(new Set(ids).size, ids.length, 'one webhook-id per event');
  checkLogs(env);
});

test('the user hangs up after talking: the target leg ends with the talk time', async () => {
  const env = start();
  const [user] = env.calls;
  user.emit('Call.Connected', {});
  const target = env.calls[1];
  env.advance(3);
  target.emit('Call.Connected', {});
  env.advance(30);
  user.emit('Call.Disconnected', { internalCode: 200, reason: 'Normal' });
  await untilTerminated(env);
  const events = bodies(env);
  assert.deepEqual(summary(events), ['started/agent', 'started/customer', 'answered/customer', 'ended/agent', 'ended/customer']);
  events.forEach(checkCommon);
  assert.ok(target.hungUp);
  assert.equal(events[4].duration, 30);
  assert.equal(events[4].reason, 'the callback leg hung up');
  checkLogs(env);
});

test('the user does not answer (busy): the target is never called, the session fails with the reason', async () => {
  const env = start();
  env.calls[0].emit('Call.Failed', { code: 486, reason: 'Busy Here' });
  await untilTerminated(env);
  assert.equal(env.calls.length, 1, 'the target is not called');
  const events = bodies(env);
  assert.deepEqual(summary(events), ['started/agent', 'ended/agent', 'failed/customer']);
  events.forEach(checkCommon);
  assert.equal(events[1].status, 'busy');
  const failed = events[2];
  assert.equal('call_id' in failed, false, 'no leg was called');
  assert.equal(failed.to, CUSTOM.target);
  assert.equal(failed.reason, 'the callback number did not answer (486 Busy Here)');
  checkLogs(env);
});

test('the target does not answer: ended with status no-answer, the user is hung up', async () => {
  const env = start();
  env.calls[0].emit('Call.Connected', {});
  env.calls[1].emit('Call.Failed', { code: 408, reason: 'Request Timeout' });
  await untilTerminated(env);
  const events = bodies(env);
  assert.deepEqual(summary(events), ['started/agent', 'started/customer', 'ended/customer', 'ended/agent']);
  events.forEach(checkCommon);
  assert.equal(events[2].status, 'no-answer');
  assert.equal(events[2].reason, '408 Request Timeout');
  assert.ok(env.calls[0].hungUp);
});

test('target failures map onto the contract: busy, no-answer, canceled, else failed with the cause', async () => {
  const cases = [
    [486, 'ended', 'busy'],
    [603, 'ended', 'busy'],
    [480, 'ended', 'no-answer'],
    [487, 'ended', 'canceled'],
    [404, 'failed', undefined],
    [402, 'failed', undefined],
  ];
  for (const [code, kind, status] of cases) {
    const env = start();
    env.calls[0].emit('Call.Connected', {});
    env.calls[1].emit('Call.Failed', { code, reason: 'Some Reason' });
    await untilTerminated(env);
    const outcome = bodies(env).find((e) => e.leg === 'customer' && e.kind !== 'started');
    assert.equal(outcome.kind, kind, `code ${code}`);
    assert.equal(outcome.status, status, `code ${code}`);
    assert.equal(outcome.reason, `${code} Some Reason`);
  }
});

test('the user hangs up while the target rings: the target is canceled, its late Failed ignored', async () => {
  const env = start({ hangupEcho: { event: 'Call.Failed', extra: { code: 487, reason: 'Request Terminated' } } });
  const [user] = env.calls;
  user.emit('Call.Connected', {});
  const target = env.calls[1];
  target.emit('Call.Ringing', {});
  env.advance(12);
  user.emit('Call.Disconnected', { internalCode: 200, reason: 'Normal' });
  await untilTerminated(env);
  await settle();
  assert.ok(target.hungUp);
  const events = bodies(env);
  assert.deepEqual(summary(events), ['started/agent', 'started/customer', 'ringing/customer', 'ended/agent', 'ended/customer']);
  const canceled = events[4];
  assert.equal(canceled.status, 'canceled');
  assert.equal(canceled.reason, 'the callback leg hung up before the target answered');
  assert.equal(events[3].duration, 12);
});

test('a Disconnected before Connected counts as a failure of that leg', async () => {
  const env = start();
  env.calls[0].emit('Call.Disconnected', { internalCode: 603, reason: 'Decline' });
  await untilTerminated(env);
  const events = bodies(env);
  assert.deepEqual(summary(events), ['started/agent', 'ended/agent', 'failed/customer']);
  assert.equal(events[1].status, 'busy');
});

test('retries: a 503 and a network error are retried with the same webhook-id, a 400 is not', async () => {
  const env = start({
    respond: (n) => (n === 1 ? { code: 503 } : n === 2 ? new Error('socket') : n === 4 ? { code: 400, text: '{}' } : { code: 200 }),
  });
  await settle();
  env.calls[0].emit('Call.Failed', { code: 480, reason: 'Temporarily Unavailable' });
  await untilTerminated(env);
  const ids = env.requests.map((r) => r.options.headers['webhook-id']);
  assert.deepEqual(ids, ['vox_100001_4242_1', 'vox_100001_4242_1', 'vox_100001_4242_1', 'vox_100001_4242_2', 'vox_100001_4242_3']);
  env.requests.forEach((r) => verified(r));
  assert.equal(env.requests[0].options.postData, env.requests[2].options.postData, 'a retry sends the same body');
  assert.ok(env.logs.some((l) => l.includes('not accepted: 400')));
});

test('an answer the relay did not accept is carried by the ending (answered_at)', async () => {
  const env = start({
    respond: (n, request) => (JSON.parse(request.options.postData).kind === 'answered' ? { code: 400 } : { code: 200 }),
  });
  env.calls[0].emit('Call.Connected', {});
  env.advance(4);
  env.calls[1].emit('Call.Connected', {});
  env.advance(20);
  env.calls[1].emit('Call.Disconnected', { internalCode: 200 });
  await untilTerminated(env);
  const ended = bodies(env).find((e) => e.kind === 'ended' && e.leg === 'customer');
  assert.equal(ended.answered_at, '2026-12-04T10:00:04Z');
  assert.equal(ended.duration, 20);
});

test('the secret from ApplicationStorage when no RELAY_EVENTS_SECRET is defined', async () => {
  const env = start({ storage: { 'relay:events_secret': SECRET } });
  env.calls[0].emit('Call.Failed', { code: 486, reason: 'Busy Here' });
  await untilTerminated(env);
  assert.equal(bodies(env).length, 3);
  checkLogs(env);
});

test('no usable secret: the calls still happen, nothing is sent, the log says why', async () => {
  for (const opts of [{ storage: {} }, { storage: new Error('storage down') }, { globalSecret: 'not-a-whsec' }]) {
    const env = start(opts);
    env.calls[0].emit('Call.Connected', {});
    assert.equal(env.calls.length, 2);
    env.calls[1].emit('Call.Failed', { code: 486, reason: 'Busy Here' });
    await untilTerminated(env);
    assert.equal(env.requests.length, 0);
    assert.ok(env.logs.some((l) => l.includes('call events are not reported')), JSON.stringify(env.logs));
    assert.equal(env.logs.join('\n').includes('not-a-whsec'), false, 'the secret is not logged');
  }
});

test('invalid custom data: nothing is called; the relay hears why when it can', async () => {
  const bad = { ...CUSTOM, target: '555 CALL ME' };
  let env = start({ customData: JSON.stringify(bad) });
  await untilTerminated(env);
  assert.equal(env.calls.length, 0);
  const events = bodies(env);
  assert.equal(events.length, 1);
  assert.equal(events[0].kind, 'failed');
  assert.equal(events[0].relay_session, CUSTOM.session);
  assert.equal(events[0].reason, 'invalid script_custom_data: `target` is not an international number');
  assert.equal(env.logs.join('\n').includes('555 CALL ME'), false);

  for (const customData of ['', '{"session": "callback:1", "target": "+1555', 'null', undefined]) {
    env = start({ customData });
    await untilTerminated(env);
    assert.equal(env.calls.length, 0);
    assert.equal(env.requests.length, 0);
  }
});

test('without a relay session the VoxEngine session id is the session_id', async () => {
  const { session, ...rest } = CUSTOM;
  const env = start({ customData: JSON.stringify(rest) });
  env.calls[0].emit('Call.Failed', { code: 486, reason: 'Busy Here' });
  await untilTerminated(env);
  for (const event of bodies(env)) {
    assert.equal(event.session_id, '4242');
    assert.equal('relay_session' in event, false);
  }
});

test('the custom data the worker sends fits in 200 bytes for a short host only (see README)', () => {
  assert.equal(Buffer.byteLength(JSON.stringify(CUSTOM)), 198);
});
