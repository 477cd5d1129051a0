/**
 * The README's Mermaid diagram is the state machine: the same states, under their console names,
 * and the same transitions (Next, a Choice's rules and default, a Catch, the end of a terminal
 * state), read from the synthesized definition. One family is drawn as a note instead of arrows:
 * every working Task's catch-all into the failure path's first state.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { definitionOf, synth } from '../infra/helpers.ts';
import { REPO_ROOT } from '../support/markdown.ts';

const END = '[*]';

/** The README's first mermaid block: its states (id -> name), arrows and notes. */
function readmeDiagram() {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const block = /```mermaid\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error('README.md has no mermaid block');
  const names = new Map<string, string>();
  const arrows = new Set<string>();
  const notes: string[] = [];
  for (const raw of block.split('\n')) {
    const line = raw.trim();
    const state = /^state "([^"]+)" as (\w+)$/.exec(line);
    const arrow = /^(\[\*\]|\w+) --> (\[\*\]|\w+)(?:\s*:.*)?$/.exec(line);
    const note = /^note (?:left|right) of (\w+)/.exec(line);
    if (state?.[1] && state[2]) names.set(state[2], state[1]);
    else if (arrow?.[1] && arrow[2]) arrows.add(`${arrow[1]} -> ${arrow[2]}`);
    else if (note?.[1]) notes.push(note[1]);
  }
  const name = (id: string) => (id === END ? END : (names.get(id) ?? `undeclared ${id}`));
  const edges = new Set([...arrows].map((a) => a.split(' -> ').map(name).join(' -> ')));
  return { names: new Set(names.values()), edges, notes: notes.map(name) };
}

/** Every transition of the synthesized definition, by state name. */
function definitionEdges() {
  const asl = definitionOf(synth().resources);
  const edges = new Set<string>([`${END} -> ${asl.StartAt}`]);
  /** Catch-all transitions (States.ALL), by their target. */
  const catchAll = new Map<string, Set<string>>();
  for (const [name, state] of Object.entries(asl.States)) {
    const to = (next: string) => edges.add(`${name} -> ${next}`);
    if (state.Next) to(state.Next);
    if (state.End || state.Type === 'Succeed' || state.Type === 'Fail') to(END);
    if (state.Default) to(state.Default);
    for (const choice of state.Choices ?? []) to(String(choice.Next));
    for (const c of state.Catch ?? []) {
      if (c.ErrorEquals.includes('States.ALL') && state.Next !== c.Next) {
        catchAll.set(c.Next, (catchAll.get(c.Next) ?? new Set()).add(`${name} -> ${c.Next}`));
      }
      to(c.Next);
    }
  }
  return { states: new Set(Object.keys(asl.States)), edges, catchAll };
}

describe("the README's state machine diagram", () => {
  const drawn = readmeDiagram();
  const actual = definitionEdges();

  it('has every state of the state machine, by its name, and no other', () => {
    expect([...drawn.names].sort()).toEqual([...actual.states].sort());
  });

  it('draws every transition, the catch-all into the failure path as a note on its target', () => {
    expect(drawn.notes, 'one note: the catch-all into the failure path').toHaveLength(1);
    const hidden = actual.catchAll.get(drawn.notes[0] ?? '') ?? new Set<string>();
    // The note stands for the catch of every working Task, not for one arrow left out.
    expect(hidden.size).toBeGreaterThan(10);
    expect(
      [...drawn.edges].filter((e) => !actual.edges.has(e)),
      'arrows the state machine lacks',
    ).toEqual([]);
    const expected = [...actual.edges].filter((e) => !hidden.has(e));
    expect(
      expected.filter((e) => !drawn.edges.has(e)),
      'transitions the diagram lacks',
    ).toEqual([]);
  });
});
