/**
 * The receiver's guest clock (host/receiver/guest-clock.ts) converts guest-monotonic ns to
 * unix-ns bigints: each time exactly origin + mono, whatever the steps between the times, up to
 * 2^53; a record without a time takes the last time seen.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestClock } from '../host/receiver/guest-clock.js';

const ORIGIN = 1_763_776_000_123_456_789n;

test('every_converted_time_is_exactly_origin_plus_the_guest_time_whatever_the_steps_between_them', () => {
  const clock = new GuestClock(ORIGIN);
  const steps = [0, 1, 2, 0, 0, 17, 255, 1022, 1023, 1024, 1025, 4096, 999_999, 0, 3, 2 ** 31, 5, 1023];
  let mono = 2_952_195;
  for (let round = 0; round < 3; round++) {
    for (const s of steps) {
      mono += s;
      clock.observe(mono);
      assert.equal(clock.unixTime(mono), ORIGIN + BigInt(mono), `guest time ${mono} after a step of ${s}`);
    }
  }
  // Backwards (an earlier time converted again, as a record without its own time may need).
  for (const back of [1, 500, 1024, 10_000_000]) assert.equal(clock.unixTime(mono - back), ORIGIN + BigInt(mono - back));
  // Near 2^53, where the steps must still be exact.
  const big = Number.MAX_SAFE_INTEGER - 5000;
  for (let m = big; m < big + 3000; m += 997) assert.equal(clock.unixTime(m), ORIGIN + BigInt(m));
});

test('a_record_without_a_time_takes_the_last_time_seen_or_guest_time_zero_before_any', () => {
  const clock = new GuestClock(ORIGIN);
  assert.equal(clock.unixTime(-1), ORIGIN);
  clock.observe(1000);
  clock.observe(400); // earlier times do not move the last time seen back
  assert.equal(clock.unixTime(-1), ORIGIN + 1000n);
  assert.equal(clock.lastTime(), ORIGIN + 1000n);
});

test('a_new_origin_applies_to_every_later_time', () => {
  const clock = new GuestClock(ORIGIN);
  assert.equal(clock.unixTime(100), ORIGIN + 100n);
  clock.setOrigin(5_000_000n);
  assert.equal(clock.unixTime(100), 5_000_100n);
  assert.equal(clock.unixTime(150), 5_000_150n);
  clock.setOrigin(ORIGIN);
  assert.equal(clock.unixTime(160), ORIGIN + 160n);
});
