/**
 * The moto server for tests: the product's launcher (cli/emulator.ts, which the demo uses too).
 * Each test file starts its own on a free 127.0.0.1 port and stops it in its own hooks.
 */
export { type MotoServer, type StartMotoOptions, startMoto } from '../../cli/emulator.ts';
