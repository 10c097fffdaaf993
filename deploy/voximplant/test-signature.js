// Offline checks of the signing code bundled in web-callback.js (SHA-256, HMAC-SHA256, base64,
// UTF-8, `whsec_` parsing, Standard Webhooks signatures): the Standard Webhooks test vector, and
// Node's own crypto and Buffer on many random inputs.
//
//   node deploy/voximplant/test-signature.js
//
// The scenario is loaded as VoxEngine would run it, in a context of its own, with no VoxEngine
// object: only its top-level definitions run.

'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const vm = require('node:vm');

function loadSigning() {
  const source = fs.readFileSync(path.join(__dirname, 'web-callback.js'), 'utf8');
  const context = vm.createContext({
    Modules: { ApplicationStorage: 'applicationstorage' },
    require: () => undefined,
    Logger: { write: () => undefined },
  });
  vm.runInContext(source, context, { filename: 'web-callback.js' });
  return context.RelaySigning;
}

// Arrays made inside the scenario's context have that context's Array prototype: compare
// them as arrays of this one.
const plain = (value) => (Array.isArray(value) ? Array.from(value) : value);
const raw = loadSigning();
const S = Object.fromEntries(
  Object.entries(raw).map(([name, fn]) => [name, (...args) => plain(fn(...args))])
);
const bytes = (buffer) => Array.from(buffer);
const buffer = (array) => Buffer.from(array);

// Deterministic pseudo-random inputs.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}
const next = rng(0x5eed);
const randomBytes = (n) => Array.from({ length: n }, () => next() & 0xff);

test('the Standard Webhooks test vector', () => {
  const key = S.parseSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
  assert.ok(key);
  assert.equal(
    S.sign(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'),
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
  );
  // The timestamp as text signs the same.
  assert.equal(
    S.sign(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', '1614265330', '{"test": 2432232314}'),
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
  );
  // Any change of id, timestamp or body changes the signature.
  assert.notEqual(
    S.sign(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265331, '{"test": 2432232314}'),
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
  );
});

test('SHA-256 of known strings (FIPS 180-2)', () => {
  const hex = (text) => buffer(S.sha256(S.utf8Encode(text))).toString('hex');
  assert.equal(hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(
    hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'
  );
  assert.equal(hex('a'.repeat(1000000)), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
});

test('SHA-256 matches node:crypto for every length around the block boundaries', () => {
  for (let n = 0; n <= 300; n++) {
    const input = randomBytes(n);
    assert.deepEqual(S.sha256(input), bytes(crypto.createHash('sha256').update(buffer(input)).digest()), `length ${n}`);
  }
});

test('HMAC-SHA256 matches node:crypto (RFC 4231 case 2, and keys shorter than, equal to and longer than a block)', () => {
  assert.equal(
    buffer(S.hmacSha256(S.utf8Encode('Jefe'), S.utf8Encode('what do ya want for nothing?'))).toString('hex'),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'
  );
  for (const keyLength of [0, 1, 16, 24, 32, 63, 64, 65, 100, 131, 200]) {
    for (const messageLength of [0, 1, 55, 56, 64, 119, 120, 500]) {
      const key = randomBytes(keyLength);
      const message = randomBytes(messageLength);
      const expected = bytes(crypto.createHmac('sha256', buffer(key)).update(buffer(message)).digest());
      assert.deepEqual(S.hmacSha256(key, message), expected, `key ${keyLength}, message ${messageLength}`);
    }
  }
});

test('base64 matches Buffer both ways; junk is refused', () => {
  for (let n = 0; n <= 100; n++) {
    const input = randomBytes(n);
    const encoded = S.base64Encode(input);
    assert.equal(encoded, buffer(input).toString('base64'), `length ${n}`);
    assert.deepEqual(S.base64Decode(encoded), input);
    assert.deepEqual(S.base64Decode(encoded.replace(/=+$/, '')), input, 'unpadded');
  }
  assert.equal(S.base64Decode('abc$'), null);
  assert.equal(S.base64Decode('a-b_'), null, 'base64url is not the standard alphabet');
  assert.equal(S.base64Decode('abcde'), null, 'a length of 4n+1 is never base64');
});

test('whsec_ secrets: the key is the base64 decoding of what follows the prefix', () => {
  const secret = 'whsec_' + Buffer.from(randomBytes(32)).toString('base64');
  assert.deepEqual(S.parseSecret(secret), bytes(Buffer.from(secret.slice(6), 'base64')));
  assert.deepEqual(S.parseSecret('  ' + secret + '\n'), S.parseSecret(secret), 'surrounding blanks are ignored');
  for (const bad of [undefined, null, 42, '', 'whsec_', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'whsec_not base64!']) {
    assert.equal(S.parseSecret(bad), null, String(bad));
  }
});

test('UTF-8 encoding matches Buffer, surrogate pairs and lone surrogates included', () => {
  const samples = ['', 'plain ascii', 'Zoë Müller', '€ 1 000', 'Привет', '電話', '📞 call', 'a\ud800b', '\udc00', 'x\ud83d'];
  for (const text of samples) {
    assert.deepEqual(S.utf8Encode(text), bytes(Buffer.from(text, 'utf8')), JSON.stringify(text));
  }
});

test('asciiJson is plain ASCII and means the same JSON', () => {
  const value = { kind: 'failed', reason: 'Zoë 📞 電話 \u2028', n: 12.5, nested: { a: [1, 'ü'] } };
  const text = S.asciiJson(value);
  assert.match(text, /^[\x00-\x7e]*$/);
  assert.deepEqual(JSON.parse(text), value);
});

test('a signature made by the scenario verifies as the relay verifies it (node:crypto)', () => {
  const secret = 'whsec_' + Buffer.from(randomBytes(24)).toString('base64');
  const key = S.parseSecret(secret);
  const id = 'vox_100001_4242_1';
  const timestamp = 1764842400;
  const body = S.asciiJson({ kind: 'ended', relay_session: 'callback:0190', reason: 'Zoë hung up', duration: 65 });
  const expected =
    'v1,' +
    crypto
      .createHmac('sha256', Buffer.from(secret.slice(6), 'base64'))
      .update(`${id}.${timestamp}.`)
      .update(Buffer.from(body, 'utf8'))
      .digest('base64');
  assert.equal(S.sign(key, id, timestamp, body), expected);
});
