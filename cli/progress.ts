/** What `rekey rotate` prints: a line per state as it is entered and left, then a summary. */
import { styleText } from 'node:util';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { type State, walkStates } from './definition.ts';
import {
  type ExecutionEvent,
  exitCodeFor,
  outcomeOf,
  type RotationResult,
  STATUS_CHANGE_RULE,
} from './local-runner.ts';

type Style = Parameters<typeof styleText>[0];
export type Paint = (style: Style, text: string) => string;

export const plain: Paint = (_style, text) => text;
export const colored: Paint = (style, text) => styleText(style, text, { validateStream: false });

/** Colors only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function paintFor(stream: NodeJS.WriteStream, env = process.env): Paint {
  return stream.isTTY && !env.NO_COLOR ? colored : plain;
}

export interface ProgressOptions {
  definition: StateMachineDefinition;
  noWait: boolean;
  write: (line: string) => void;
  paint?: Paint;
}

/** An onEvent listener for runRotation that prints progress lines. */
export function progressPrinter(options: ProgressOptions): (event: ExecutionEvent) => void {
  const { noWait, write, paint = plain } = options;
  const states = new Map<string, State>();
  walkStates(options.definition, (name, state) => states.set(name, state));
  const entered = new Map<string, number>();
  // Map iterations run the same state names: tell them apart by index.
  const label = (name: string, index: number | undefined) =>
    index === undefined ? name : `${name} [${index}]`;

  return (event) => {
    switch (event.type) {
      case 'StateEntered': {
        const name = label(event.state.name, event.index);
        entered.set(name, event.timestamp);
        const state = states.get(event.state.name);
        const wait =
          state?.Type === 'Wait' ? ` ${paint('dim', describeWait(state, event.state.input, noWait))}` : '';
        write(`${paint('cyan', '→')} ${name}${wait}`);
        break;
      }
      case 'StateExited': {
        const name = label(event.state.name, event.index);
        const ms = event.timestamp - (entered.get(name) ?? event.timestamp);
        write(`${paint('green', '✓')} ${name} ${paint('dim', `(${ms} ms)`)}`);
        break;
      }
      case 'StateFailed':
        write(`${paint('red', '✗')} ${label(event.state.name, event.index)}: ${paint('red', event.Error)}`);
        break;
      case 'StateRetried':
        write(
          `${paint('yellow', '↻')} ${label(event.state.name, event.index)}: retry ${event.retry.attempt}`,
        );
        break;
      case 'StateCaught':
        write(`  ${paint('yellow', 'caught')} → ${event.catch.catcher.Next}`);
        break;
      default:
        break;
    }
  };
}

const UNITS = [
  ['day', 86_400],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
] as const;

export function humanDuration(seconds: number): string {
  for (const [unit, size] of UNITS) {
    if (seconds >= size && seconds % size === 0) {
      const count = seconds / size;
      return `${count} ${unit}${count === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}

function describeWait(state: Extract<State, { Type: 'Wait' }>, input: unknown, noWait: boolean): string {
  const seconds = state.Seconds ?? (state.SecondsPath ? valueAt(input, state.SecondsPath) : undefined);
  const until = state.Timestamp ?? (state.TimestampPath ? valueAt(input, state.TimestampPath) : undefined);
  const what =
    typeof seconds === 'number'
      ? humanDuration(seconds)
      : typeof until === 'string'
        ? `until ${until}`
        : 'a while';
  return noWait ? `(would wait ${what}; skipped: --no-wait)` : `(waiting ${what}; --no-wait skips)`;
}

/** Reads a simple `$.a.b` reference path; enough to describe a Wait state's duration. */
function valueAt(document: unknown, path: string): unknown {
  let value = document;
  for (const key of path
    .replace(/^\$\.?/, '')
    .split('.')
    .filter(Boolean)) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** AKIAIOSFODNN7EXAMPLE -> AKIA…MPLE: enough to recognise a key, not to copy it around. */
export function maskKeyId(keyId: string): string {
  return keyId.length <= 8 ? keyId : `${keyId.slice(0, 4)}…${keyId.slice(-4)}`;
}

function keyIdAt(document: unknown, field: 'oldKey' | 'newKey'): string | undefined {
  const id = valueAt(document, `$.${field}.accessKeyId`);
  return typeof id === 'string' ? id : undefined;
}

/**
 * The state document at the end: the output when the execution succeeded, otherwise the input of
 * the last state entered (a Fail state receives the document with the caught error).
 */
export function finalDocument(result: RotationResult): unknown {
  if (result.status === 'SUCCEEDED') return result.output;
  for (let i = result.events.length - 1; i >= 0; i--) {
    const event = result.events[i];
    if (event?.type === 'StateEntered') return event.state.input;
  }
  return undefined;
}

/** The human summary: outcome, key ids (masked), message. */
export function summaryLines(result: RotationResult, paint: Paint = plain): string[] {
  const document = finalDocument(result);
  const outcome = outcomeOf(document);
  const code = exitCodeFor(result);
  const status = outcome?.status ?? result.status;
  const color = code === 0 ? 'green' : code === 2 ? 'yellow' : 'red';
  const lines = [
    `${paint('bold', 'Outcome:')} ${paint(color, status)}${outcome?.reason ? ` (${outcome.reason})` : ''}`,
  ];
  const oldKey = keyIdAt(document, 'oldKey');
  const newKey = keyIdAt(document, 'newKey');
  // A service-specific credential's ids sit in the same fields; the plan's serviceName says which.
  const service = valueAt(document, '$.serviceName');
  const noun = typeof service === 'string' ? 'credential' : 'key';
  if (typeof service === 'string') lines.push(`${paint('bold', 'Service:')} ${service}`);
  if (oldKey) lines.push(`${paint('bold', `Old ${noun}:`)} ${maskKeyId(oldKey)}`);
  if (newKey) lines.push(`${paint('bold', `New ${noun}:`)} ${maskKeyId(newKey)}`);
  if (outcome?.message) lines.push(`${paint('bold', 'Message:')} ${outcome.message}`);
  if (result.status !== 'SUCCEEDED') {
    lines.push(`${paint('bold', 'Error:')} ${result.error ?? 'unknown'}${causeText(result.cause)}`);
    if (result.lastState) lines.push(`${paint('bold', 'Stopped at:')} ${result.lastState}`);
    // What the status change rule's cleanup did (a local run invokes it itself).
    const cleanup = result.tasks.find((t) => t.state === STATUS_CHANGE_RULE);
    const said = (cleanup?.output as { message?: unknown } | undefined)?.message;
    if (typeof said === 'string') lines.push(`${paint('bold', 'Cleanup:')} ${said}`);
    else if (cleanup?.error) lines.push(`${paint('bold', 'Cleanup:')} failed: ${cleanup.error.name}`);
  }
  return lines;
}

/** A Lambda error's Cause is JSON ({errorType, errorMessage}); show only the message. */
function causeText(cause: string | undefined): string {
  if (!cause) return '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return `: ${parsed.errorMessage}`;
  } catch {
    // Not JSON: a Fail state's own Cause text.
  }
  return `: ${cause}`;
}
