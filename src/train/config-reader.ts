/**
 * Typed reading of one JSON object of a config file. Every key must be known (a misspelt key
 * would otherwise be silently ignored and its default used), and every error names the field by
 * its full path, the value found, and what was expected.
 */
import { TrainConfigError } from './errors.js';
import { closestMatch } from './suggest.js';

export interface NumberRule {
  integer?: boolean;
  /** Inclusive bounds. */
  min?: number;
  max?: number;
  /** Exclusive lower bound. */
  above?: number;
}

/** Where else a key is valid, for "did you mean optimizer.lr?" when it is put in the wrong section. */
export type KeyLocator = (key: string) => string | undefined;

function describe(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value);
}

function ruleText(rule: NumberRule): string {
  const parts: string[] = [rule.integer ? 'an integer' : 'a number'];
  if (rule.above !== undefined) parts.push(`> ${rule.above}`);
  if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
  if (rule.max !== undefined) parts.push(`<= ${rule.max}`);
  return parts.join(' ');
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class Section {
  private constructor(readonly path: string, readonly value: Readonly<Record<string, unknown>>) {}

  /** Checks that `value` is an object whose keys are all in `keys`. */
  static of(value: unknown, path: string, keys: readonly string[], locate?: KeyLocator): Section {
    if (!isPlainObject(value)) throw new TrainConfigError(`${path} must be an object, got ${describe(value)}`);
    for (const key of Object.keys(value)) {
      if (keys.includes(key)) continue;
      const near = closestMatch(key, keys);
      const elsewhere = near === undefined ? locate?.(key) : undefined;
      const hint = near !== undefined ? `; did you mean '${near}'?` : elsewhere !== undefined ? `; did you mean '${elsewhere}'?` : '';
      throw new TrainConfigError(`${path}: unknown key '${key}'${hint} (valid keys: ${keys.join(', ')})`);
    }
    return new Section(path, value);
  }

  field(key: string): string {
    return `${this.path}.${key}`;
  }

  has(key: string): boolean {
    return this.value[key] !== undefined;
  }

  raw(key: string): unknown {
    return this.value[key];
  }

  fail(key: string, expected: string): never {
    throw new TrainConfigError(`${this.field(key)} must be ${expected}, got ${describe(this.value[key])}`);
  }

  number(key: string, rule: NumberRule = {}, fallback?: number): number {
    const v = this.value[key];
    if (v === undefined && fallback !== undefined) return fallback;
    const ok = typeof v === 'number' && Number.isFinite(v) && (!rule.integer || Number.isSafeInteger(v))
      && (rule.min === undefined || v >= rule.min) && (rule.max === undefined || v <= rule.max)
      && (rule.above === undefined || v > rule.above);
    if (!ok) this.fail(key, ruleText(rule));
    return v;
  }

  /** A number, or null (written as null or left out) for "off". */
  numberOrNull(key: string, rule: NumberRule = {}, fallback: number | null = null): number | null {
    const v = this.value[key];
    if (v === undefined) return fallback;
    if (v === null) return null;
    return this.number(key, rule);
  }

  string(key: string, fallback?: string): string {
    const v = this.value[key];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'string' || v.length === 0) this.fail(key, 'a non-empty string');
    return v;
  }

  stringOrNull(key: string): string | null {
    const v = this.value[key];
    return v === undefined || v === null ? null : this.string(key);
  }

  boolean(key: string, fallback?: boolean): boolean {
    const v = this.value[key];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback?: T): T {
    const v = this.value[key];
    if (v === undefined && fallback !== undefined) return fallback;
    const found = choices.find((c) => c === v);
    if (found !== undefined) return found;
    const near = typeof v === 'string' ? closestMatch(v, choices) : undefined;
    const hint = near !== undefined ? ` (did you mean '${near}'?)` : '';
    throw new TrainConfigError(`${this.field(key)} must be one of ${choices.map((c) => `'${c}'`).join(', ')}, got ${describe(v)}${hint}`);
  }

  /** A list of `length` numbers (any length when omitted), each following `rule`. */
  numbers(key: string, rule: NumberRule, length?: number): number[] {
    const v = this.value[key];
    const expected = `${length === undefined ? 'a list' : `a list of ${length}`} of numbers, each ${ruleText(rule)}`;
    if (!Array.isArray(v) || (length !== undefined && v.length !== length)) this.fail(key, expected);
    const out: number[] = [];
    for (const item of v as unknown[]) {
      const ok = typeof item === 'number' && Number.isFinite(item) && (!rule.integer || Number.isInteger(item))
        && (rule.min === undefined || item >= rule.min) && (rule.max === undefined || item <= rule.max)
        && (rule.above === undefined || item > rule.above);
      if (!ok) this.fail(key, expected);
      out.push(item as number);
    }
    return out;
  }

  strings(key: string, fallback?: string[]): string[] {
    const v = this.value[key];
    if (v === undefined && fallback !== undefined) return fallback;
    if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string')) this.fail(key, 'a list of strings');
    return [...v];
  }

  /** A nested object (an empty one when left out). */
  section(key: string, keys: readonly string[], locate?: KeyLocator): Section {
    const v = this.value[key];
    return Section.of(v === undefined ? {} : v, this.field(key), keys, locate);
  }
}
