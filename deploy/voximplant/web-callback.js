/*
 * The relay's Voximplant web-callback scenario (VoxEngine JavaScript).
 *
 * Started by relay-worker through the Management API `StartScenarios` (`rule_id`,
 * `script_custom_data`), it calls the user's own number first, then, once the user has
 * answered, the number they asked for, and connects the two. Every call event is reported to
 * the relay (`POST <events_url>`, Standard Webhooks signed) in the body contract of
 * docs/PROTOCOLS.md, "Voximplant scenario events (the relay's own contract)".
 *
 * script_custom_data (JSON, read with VoxEngine.customData()):
 *   {"session": "callback:0190…",        the relay's session: sent back as `relay_session`
 *    "callback": "+15551230000",          the user's number: called first
 *    "target": "+15557654321",            called once the user answered
 *    "caller_id": "+15550001111",         the number both legs show (rented or verified)
 *    "events_url": "https://relay.example.com/v1/voximplant/events"}
 *
 * Legs, as the relay's call log reads them: the user (the `callback` number) is the staff
 * side, `leg: "agent"`, whose events never end the relay's session by themselves; the
 * `target` is the customer, `leg: "customer"`. If the user's phone never answers, the target
 * is not called and the session is reported `failed` (a customer-leg event without a
 * `call_id`), with the reason.
 *
 * The events secret (`whsec_…`, the value of the relay's
 * `ingress.voximplant.events_secret_env`) is NOT in this file. VoxEngine has no environment
 * variables; the scenario takes the first of:
 *   1. a global `RELAY_EVENTS_SECRET`, defined by a second, private scenario attached to the
 *      same rule (one line: `var RELAY_EVENTS_SECRET = "whsec_…";`); scenarios of one rule
 *      share one global scope;
 *   2. the application's key-value storage (ApplicationStorage), key `relay:events_secret`
 *      (note: storage items expire, 90 days at most, so that copy must be renewed).
 * See README.md beside this file. The secret and the numbers are never written to the log
 * (numbers appear masked, `***0000`).
 *
 * VoxEngine's Crypto.hmac_sha256(key, data) takes the key as a string, but a Standard
 * Webhooks key is the base64 decoding of the secret: arbitrary bytes. So the file carries its
 * own small SHA-256 / HMAC-SHA256 / base64 / UTF-8 code (RelaySigning below), checked by
 * test-signature.js against the Standard Webhooks test vector and Node's crypto.
 *
 * Not VoxEngine.easyProcess: it is made for an incoming call (it answers call1 when call2
 * connects) and closes the session at the first hangup, before the last events are sent.
 */

require(Modules.ApplicationStorage);

/* ------------------------------------------------------------------------------------------
 * Settings
 * ---------------------------------------------------------------------------------------- */

var RELAY_SETTINGS = {
  // ApplicationStorage key of the events secret (used when RELAY_EVENTS_SECRET is not set).
  secretStorageKey: 'relay:events_secret',
  // Attempts per event, and the waits between them (ms). Retries keep the event's webhook-id,
  // so the relay deduplicates a request that did arrive.
  attempts: 4,
  retryDelaysMs: [1000, 3000, 9000],
  // Seconds one request may take (VoxEngine's default is 90; it can only be lowered).
  requestTimeoutSecs: 10,
  connectTimeoutSecs: 5,
  // How long the end of the session waits for unsent events before VoxEngine.terminate().
  // (A session without calls is ended by VoxEngine itself after 60 s.)
  drainTimeoutMs: 45000,
};

/* ------------------------------------------------------------------------------------------
 * Standard Webhooks signing: SHA-256, HMAC-SHA256, base64, UTF-8 (pure JavaScript, bytes as
 * arrays of numbers 0-255).
 * ---------------------------------------------------------------------------------------- */

var RelaySigning = (function () {
  var K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ];
  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

  function rotr(x, n) {
    return (x >>> n) | (x << (32 - n));
  }

  /** SHA-256 of a byte array; 32 bytes. */
  function sha256(bytes) {
    var h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    var length = bytes.length;
    var m = bytes.slice();
    m.push(0x80);
    while (m.length % 64 !== 56) m.push(0);
    var bitsHigh = Math.floor(length / 0x20000000);
    var bitsLow = (length * 8) >>> 0;
    m.push((bitsHigh >>> 24) & 0xff, (bitsHigh >>> 16) & 0xff, (bitsHigh >>> 8) & 0xff, bitsHigh & 0xff);
    m.push((bitsLow >>> 24) & 0xff, (bitsLow >>> 16) & 0xff, (bitsLow >>> 8) & 0xff, bitsLow & 0xff);
    var w = new Array(64);
    for (var offset = 0; offset < m.length; offset += 64) {
      var t;
      for (t = 0; t < 16; t++) {
        var i = offset + t * 4;
        w[t] = (m[i] << 24) | (m[i + 1] << 16) | (m[i + 2] << 8) | m[i + 3];
      }
      for (t = 16; t < 64; t++) {
        var s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
        var s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (t = 0; t < 64; t++) {
        var S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        var ch = (e & f) ^ (~e & g);
        var t1 = (k + S1 + ch + K[t] + w[t]) | 0;
        var S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        var maj = (a & b) ^ (a & c) ^ (b & c);
        var t2 = (S0 + maj) | 0;
        k = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      h[0] = (h[0] + a) | 0;
      h[1] = (h[1] + b) | 0;
      h[2] = (h[2] + c) | 0;
      h[3] = (h[3] + d) | 0;
      h[4] = (h[4] + e) | 0;
      h[5] = (h[5] + f) | 0;
      h[6] = (h[6] + g) | 0;
      h[7] = (h[7] + k) | 0;
    }
    var out = [];
    for (var j = 0; j < 8; j++) {
      out.push((h[j] >>> 24) & 0xff, (h[j] >>> 16) & 0xff, (h[j] >>> 8) & 0xff, h[j] & 0xff);
    }
    return out;
  }

  /** HMAC-SHA256 (RFC 2104) of byte arrays; 32 bytes. */
  function hmacSha256(key, message) {
    var k = key.length > 64 ? sha256(key) : key.slice();
    while (k.length < 64) k.push(0);
    var inner = [];
    var outer = [];
    for (var i = 0; i < 64; i++) {
      inner.push(k[i] ^ 0x36);
      outer.push(k[i] ^ 0x5c);
    }
    return sha256(outer.concat(sha256(inner.concat(message))));
  }

  /** The UTF-8 bytes of a string (lone surrogates become U+FFFD, as in TextEncoder). */
  function utf8Encode(text) {
    var out = [];
    for (var i = 0; i < text.length; i++) {
      var cp = text.charCodeAt(i);
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
        var low = text.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          i++;
        } else {
          cp = 0xfffd;
        }
      } else if (cp >= 0xd800 && cp <= 0xdfff) {
        cp = 0xfffd;
      }
      if (cp < 0x80) {
        out.push(cp);
      } else if (cp < 0x800) {
        out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
      } else {
        out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
      }
    }
    return out;
  }

  /** Standard base64 (RFC 4648, with padding) of a byte array. */
  function base64Encode(bytes) {
    var out = '';
    for (var i = 0; i < bytes.length; i += 3) {
      var n = (bytes[i] << 16) | ((i + 1 < bytes.length ? bytes[i + 1] : 0) << 8) | (i + 2 < bytes.length ? bytes[i + 2] : 0);
      out += B64.charAt((n >> 18) & 63) + B64.charAt((n >> 12) & 63);
      out += i + 1 < bytes.length ? B64.charAt((n >> 6) & 63) : '=';
      out += i + 2 < bytes.length ? B64.charAt(n & 63) : '=';
    }
    return out;
  }

  /** Decodes standard base64 (padding optional); null when it is not base64. */
  function base64Decode(text) {
    var s = String(text).replace(/=+$/, '');
    if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) return null;
    var out = [];
    var buffer = 0;
    var bits = 0;
    for (var i = 0; i < s.length; i++) {
      buffer = (buffer << 6) | B64.indexOf(s.charAt(i));
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push((buffer >> bits) & 0xff);
      }
    }
    return out;
  }

  /** The signing key of a `whsec_<base64>` secret; null when it is not one. */
  function parseSecret(secret) {
    if (typeof secret !== 'string') return null;
    var text = secret.trim();
    if (text.indexOf('whsec_') !== 0) return null;
    var key = base64Decode(text.slice('whsec_'.length));
    return key && key.length > 0 ? key : null;
  }

  /** `v1,<base64 HMAC-SHA256 over "id.timestamp.body">`, the webhook-signature value. */
  function sign(key, id, timestamp, body) {
    var content = utf8Encode(id + '.' + timestamp + '.' + body);
    return 'v1,' + base64Encode(hmacSha256(key, content));
  }

  /** JSON with every non-ASCII character escaped: the bytes sent are the bytes signed. */
  function asciiJson(value) {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, function (c) {
      return '\\u' + ('0000' + c.charCodeAt(0).toString(16)).slice(-4);
    });
  }

  return {
    sha256: sha256,
    hmacSha256: hmacSha256,
    utf8Encode: utf8Encode,
    base64Encode: base64Encode,
    base64Decode: base64Decode,
    parseSecret: parseSecret,
    sign: sign,
    asciiJson: asciiJson,
  };
})();

/* ------------------------------------------------------------------------------------------
 * The scenario
 * ---------------------------------------------------------------------------------------- */

var RelayWebCallback = (function () {
  var settings = RELAY_SETTINGS;

  var ctx = {
    voxSession: null, // VoxEngine's session id (AppEvents.Started sessionId)
    accountId: null,
    data: null, // the custom data, once valid
    relaySession: null, // data.session, when given
    eventsUrl: null,
    user: null, // the callback leg (agent)
    target: null, // the target leg (customer)
    finishing: false,
    terminated: false,
    sessionReported: false, // the customer-side outcome is reported
    answerDelivered: false, // the relay acknowledged the target's `answered`
    reporter: null,
  };

  function log(message) {
    Logger.write('[relay] ' + message);
  }

  /** A number for the log: its last four digits. */
  function mask(number) {
    var text = String(number || '');
    return text.length <= 4 ? '***' : '***' + text.slice(-4);
  }

  /** RFC 3339 in whole seconds, UTC. */
  function rfc3339(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  function seconds(fromMs, toMs) {
    return Math.max(0, Math.round((toMs - fromMs) / 1000));
  }

  function describe(code, reason) {
    var text = [code, reason].filter(function (x) {
      return x !== undefined && x !== null && x !== '';
    });
    return text.length ? text.join(' ') : 'no cause given';
  }

  /**
   * How an unanswered leg ended, in the contract's words: `ended` with a status for the
   * ordinary outcomes, else `failed` with the cause (SIP codes as VoxEngine reports them in
   * CallEvents.Failed).
   */
  function unanswered(code, reason) {
    var cause = describe(code, reason);
    switch (Number(code)) {
      case 486:
      case 600:
      case 603:
        return { kind: 'ended', status: 'busy', reason: cause };
      case 408:
      case 480:
        return { kind: 'ended', status: 'no-answer', reason: cause };
      case 487:
        return { kind: 'ended', status: 'canceled', reason: cause };
      default:
        return { kind: 'failed', reason: cause };
    }
  }

  /* ---- custom data ---- */

  var NUMBER = /^\+?[1-9][0-9]{6,14}$/;

  /** Reads script_custom_data: {data} or {error} (never echoing the numbers). */
  function readCustomData(raw) {
    if (typeof raw !== 'string' || raw.trim() === '') {
      return { error: 'no script_custom_data' };
    }
    var data;
    try {
      data = JSON.parse(raw);
    } catch (e) {
      return { error: 'script_custom_data is not JSON (' + raw.length + ' characters; cut short?)' };
    }
    if (!data || typeof data !== 'object') return { error: 'script_custom_data is not a JSON object' };
    var out = {
      session: typeof data.session === 'string' && data.session.trim() ? data.session.trim() : null,
      events_url:
        typeof data.events_url === 'string' && /^https?:\/\/\S+$/.test(data.events_url.trim())
          ? data.events_url.trim()
          : null,
    };
    var fields = ['callback', 'target', 'caller_id'];
    for (var i = 0; i < fields.length; i++) {
      var value = data[fields[i]];
      var text = typeof value === 'string' ? value.trim() : '';
      if (!NUMBER.test(text)) {
        return { error: '`' + fields[i] + '` is not an international number', partial: out };
      }
      out[fields[i]] = text;
    }
    return { data: out };
  }

  /* ---- the events secret ---- */

  /** Resolves with the signing key, or null (the events are then not sent). */
  function loadKey() {
    var fromScenario = typeof RELAY_EVENTS_SECRET === 'string' && RELAY_EVENTS_SECRET !== '' ? RELAY_EVENTS_SECRET : null;
    var source;
    var secret;
    if (fromScenario) {
      source = 'RELAY_EVENTS_SECRET';
      secret = Promise.resolve(fromScenario);
    } else if (typeof ApplicationStorage !== 'undefined' && ApplicationStorage.get) {
      source = 'ApplicationStorage ' + settings.secretStorageKey;
      secret = Promise.resolve()
        .then(function () {
          return ApplicationStorage.get(settings.secretStorageKey);
        })
        .then(function (item) {
          return item && typeof item.value === 'string' ? item.value : null;
        });
    } else {
      source = 'nowhere';
      secret = Promise.resolve(null);
    }
    return secret
      .then(function (value) {
        var key = RelaySigning.parseSecret(value);
        if (!key) {
          log('no usable events secret (' + source + (value ? ': not a whsec_ secret' : ': not set') + '); call events are not reported');
        }
        return key;
      })
      .catch(function (e) {
        log('reading the events secret from ' + source + ' failed (' + (e && e.message) + '); call events are not reported');
        return null;
      });
  }

  /* ---- reporting ---- */

  function delay(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function retryable(code) {
    return code <= 0 || code === 408 || code === 425 || code === 429 || code >= 500;
  }

  /**
   * Sends the events one at a time, in order, each signed at send time and retried on
   * network errors, 408, 429 and 5xx with the same webhook-id.
   */
  function Reporter(url, keyPromise, idPrefix) {
    this.url = url;
    this.keyPromise = keyPromise;
    this.idPrefix = idPrefix;
    this.seq = 0;
    this.pending = 0;
    this.tail = Promise.resolve();
    this.idleWaiters = [];
  }

  /**
   * Queues one event. `opts.late(fields)` may add fields when it is sent; `opts.delivered()`
   * runs once the relay accepted it, before the next event is sent. Resolves true once the
   * relay accepted it (2xx), false otherwise.
   */
  Reporter.prototype.send = function (fields, opts) {
    var self = this;
    opts = opts || {};
    self.seq += 1;
    var id = self.idPrefix + '_' + self.seq;
    self.pending += 1;
    var done = self.tail
      .then(function () {
        return self.keyPromise;
      })
      .then(function (key) {
        if (!key || !self.url) return false;
        if (opts.late) opts.late(fields);
        return self.deliver(key, id, RelaySigning.asciiJson(fields), fields.kind);
      })
      .then(function (ok) {
        if (ok && opts.delivered) opts.delivered();
        return ok;
      })
      .catch(function (e) {
        log('event ' + id + ' not sent: ' + (e && e.message));
        return false;
      });
    self.tail = done;
    return done.then(function (ok) {
      self.pending -= 1;
      if (self.pending === 0) {
        var waiters = self.idleWaiters;
        self.idleWaiters = [];
        waiters.forEach(function (w) {
          w();
        });
      }
      return ok;
    });
  };

  Reporter.prototype.deliver = function (key, id, body, kind) {
    var self = this;
    var attempt = 0;
    function once() {
      attempt += 1;
      var timestamp = Math.floor(Date.now() / 1000);
      var options = {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': RelaySigning.sign(key, id, timestamp, body),
        },
        postData: body,
        timeout: settings.requestTimeoutSecs,
        connectionTimeout: settings.connectTimeoutSecs,
      };
      return Promise.resolve()
        .then(function () {
          return Net.httpRequestAsync(self.url, options);
        })
        .then(
          function (result) {
            return result && typeof result.code === 'number' ? result.code : -1;
          },
          function () {
            return -1;
          }
        )
        .then(function (code) {
          if (code >= 200 && code < 300) return true;
          if (retryable(code) && attempt < settings.attempts) {
            var wait = settings.retryDelaysMs[Math.min(attempt - 1, settings.retryDelaysMs.length - 1)];
            log('event ' + id + ' (' + kind + '): ' + code + ', retrying in ' + wait + ' ms');
            return delay(wait).then(once);
          }
          log('event ' + id + ' (' + kind + ') not accepted: ' + code + ' after ' + attempt + ' attempt(s)');
          return false;
        });
    }
    return once();
  };

  /** Resolves when nothing is queued any more, or after `capMs`. */
  Reporter.prototype.idle = function (capMs) {
    var self = this;
    if (self.pending === 0) return Promise.resolve(true);
    return new Promise(function (resolve) {
      var timer = setTimeout(function () {
        resolve(false);
      }, capMs);
      self.idleWaiters.push(function () {
        clearTimeout(timer);
        resolve(true);
      });
    });
  };

  /** The fields every event has: kind, the session, the leg, direction, numbers, time. */
  function eventFields(kind, leg, atMs) {
    var fields = { kind: kind };
    if (ctx.relaySession) {
      fields.relay_session = ctx.relaySession;
    } else {
      fields.session_id = ctx.voxSession;
    }
    if (leg && leg.call) fields.call_id = safe(function () {
      return leg.call.id();
    });
    fields.leg = leg ? leg.role : 'customer';
    fields.direction = 'outbound';
    if (ctx.data.caller_id) fields.from = ctx.data.caller_id;
    var to = leg ? leg.number : ctx.data.target;
    if (to) fields.to = to;
    fields.time = rfc3339(atMs);
    return fields;
  }

  function report(fields, opts) {
    if (!ctx.reporter) return Promise.resolve(false);
    return ctx.reporter.send(fields, opts);
  }

  function safe(fn) {
    try {
      return fn();
    } catch (e) {
      return undefined;
    }
  }

  /* ---- legs ---- */

  function Leg(role, number) {
    this.role = role; // 'agent' (the user) or 'customer' (the target)
    this.number = number;
    this.call = null;
    this.rang = false;
    this.connectedAt = null;
    this.endedAt = null;
    this.done = false;
  }

  /** Calls `leg` and wires its events. */
  function place(leg, onConnected) {
    leg.call = VoxEngine.callPSTN(leg.number, ctx.data.caller_id);
    report(eventFields('started', leg, Date.now()));
    leg.call.addEventListener(CallEvents.Ringing, guard(function () {
      if (leg.rang || leg.done || leg.connectedAt) return;
      leg.rang = true;
      report(eventFields('ringing', leg, Date.now()));
    }));
    leg.call.addEventListener(CallEvents.Connected, guard(function () {
      if (leg.done || leg.connectedAt) return;
      leg.connectedAt = Date.now();
      onConnected(leg);
    }));
    leg.call.addEventListener(CallEvents.Failed, guard(function (e) {
      ended(leg, e && e.code, e && e.reason);
    }));
    leg.call.addEventListener(CallEvents.Disconnected, guard(function (e) {
      ended(leg, e && e.internalCode, e && e.reason);
    }));
  }

  /** The user answered: call the target, its media to and from the user's call. */
  function userConnected(user) {
    log('the callback number ' + mask(user.number) + ' answered; calling the target ' + mask(ctx.target.number));
    place(ctx.target, targetConnected);
    // Media between the two calls from now on, as VoxEngine.easyProcess wires it (before the
    // second call answers): the user hears the target's ringback while waiting, and the two
    // talk once it answers.
    VoxEngine.sendMediaBetween(user.call, ctx.target.call);
  }

  function targetConnected(target) {
    log('the target ' + mask(target.number) + ' answered; the calls are connected');
    report(eventFields('answered', target, target.connectedAt), {
      delivered: function () {
        ctx.answerDelivered = true;
      },
    });
  }

  /** `leg` ended by itself (CallEvents.Failed or Disconnected). */
  function ended(leg, code, reason) {
    if (leg.done) return;
    leg.done = true;
    leg.endedAt = Date.now();
    log((leg.role === 'agent' ? 'the callback leg' : 'the target leg') + ' ended: ' + describe(code, reason));
    reportLegEnd(leg, unanswered(code, reason), null);
    if (leg.role === 'agent') {
      finish(
        leg.connectedAt ? null : 'the callback number did not answer (' + describe(code, reason) + ')',
        'the callback leg hung up'
      );
    } else {
      finish(null, 'the target leg ended');
    }
  }

  /**
   * Reports how `leg` ended. Answered: `ended` with the talk time. Unanswered: `outcome`
   * (from its failure), or, when the scenario hung it up, `canceled` with `why`.
   */
  function reportLegEnd(leg, outcome, why) {
    var fields;
    if (leg.connectedAt) {
      fields = eventFields('ended', leg, leg.endedAt);
      fields.duration = seconds(leg.connectedAt, leg.endedAt);
      if (why) fields.reason = why;
    } else if (why) {
      fields = eventFields('ended', leg, leg.endedAt);
      fields.status = 'canceled';
      fields.reason = why;
    } else {
      fields = eventFields(outcome.kind, leg, leg.endedAt);
      if (outcome.status) fields.status = outcome.status;
      fields.reason = outcome.reason;
    }
    var opts = {};
    if (leg.role === 'customer') {
      ctx.sessionReported = true;
      if (leg.connectedAt) {
        var answeredAt = leg.connectedAt;
        // Should the `answered` report not have been accepted, the ending carries the answer.
        opts.late = function (f) {
          if (!ctx.answerDelivered) f.answered_at = rfc3339(answeredAt);
        };
      }
    }
    return report(fields, opts);
  }

  /**
   * Ends the session: hangs up what is still up (reporting it as ended because of `cause`),
   * reports `failure` as the outcome if the target was never called, waits for the reports,
   * then terminates.
   */
  function finish(failure, cause) {
    cause = cause || 'the scenario ended';
    if (ctx.finishing) return;
    ctx.finishing = true;
    [ctx.user, ctx.target].forEach(function (leg) {
      if (!leg || !leg.call || leg.done) return;
      leg.done = true;
      leg.endedAt = Date.now();
      safe(function () {
        leg.call.hangup();
      });
      reportLegEnd(leg, null, leg.role === 'customer' && !leg.connectedAt ? cause + ' before the target answered' : cause);
    });
    if (ctx.data && !ctx.sessionReported) {
      ctx.sessionReported = true;
      var fields = eventFields('failed', null, Date.now());
      fields.reason = failure || 'the target was not called';
      report(fields);
    }
    var drained = ctx.reporter ? ctx.reporter.idle(settings.drainTimeoutMs) : Promise.resolve(true);
    drained.then(function (all) {
      if (!all) log('terminating with events still unsent');
      terminate();
    });
  }

  function terminate() {
    if (ctx.terminated) return;
    ctx.terminated = true;
    VoxEngine.terminate();
  }

  /** Runs an event handler; an exception ends the session instead of leaving calls up. */
  function guard(fn) {
    return function (e) {
      try {
        return fn(e);
      } catch (err) {
        var what = 'scenario error: ' + (err && err.message);
        log(what);
        finish(what, what);
      }
    };
  }

  /* ---- start ---- */

  function onStarted(e) {
    ctx.voxSession = String((e && e.sessionId) || (typeof uuidgen === 'function' ? uuidgen() : Date.now()));
    ctx.accountId = e && e.accountId;
    var read = readCustomData(safe(function () {
      return VoxEngine.customData();
    }));
    var partial = read.data || read.partial || {};
    ctx.relaySession = partial.session || null;
    ctx.eventsUrl = partial.events_url || null;
    var idPrefix = 'vox_' + (ctx.accountId || 'acct') + '_' + ctx.voxSession;
    if (ctx.eventsUrl) {
      ctx.reporter = new Reporter(ctx.eventsUrl, loadKey(), idPrefix);
    }
    if (read.error) {
      log('not starting: ' + read.error + (ctx.relaySession ? ' (session ' + ctx.relaySession + ')' : ''));
      // Nothing is called; the relay hears why (when the custom data says where to).
      ctx.data = read.partial || {};
      finish('invalid script_custom_data: ' + read.error, 'invalid script_custom_data');
      return;
    }
    ctx.data = read.data;
    if (!ctx.eventsUrl) log('no events_url: call events are not reported');
    ctx.user = new Leg('agent', ctx.data.callback);
    ctx.target = new Leg('customer', ctx.data.target);
    log(
      'session ' + (ctx.relaySession || '(none)') + ' (VoxEngine ' + ctx.voxSession + '): calling the callback number ' +
        mask(ctx.user.number) + ' from ' + mask(ctx.data.caller_id)
    );
    place(ctx.user, userConnected);
  }

  function onTerminating() {
    if (!ctx.terminated && !ctx.finishing) log('the session ends before the calls were finished');
  }

  return {
    onStarted: guard(onStarted),
    onTerminating: onTerminating,
    // for tests
    _readCustomData: readCustomData,
    _unanswered: unanswered,
    _mask: mask,
  };
})();

if (typeof VoxEngine !== 'undefined' && typeof AppEvents !== 'undefined') {
  VoxEngine.addEventListener(AppEvents.Started, RelayWebCallback.onStarted);
  VoxEngine.addEventListener(AppEvents.Terminating, RelayWebCallback.onTerminating);
}
