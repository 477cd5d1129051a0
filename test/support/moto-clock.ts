/**
 * A moto server whose clock a test can move (cli/moto-clock.py): the honest way to get access
 * keys that are 91 days old, or were last used 45 days ago, out of an emulator that stamps
 * everything with "now". `setOffsetDays(-91)`, create or use a key, `setOffsetDays(0)`.
 * The launcher is the product's (cli/emulator.ts): the demo seeds its account the same way.
 */
export { type MotoClockServer, startMotoWithClock } from '../../cli/emulator.ts';
