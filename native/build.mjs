// Builds native/build/sae_blas.node (the BLAS matmul addon) with the system C compiler; run by `npm ci` (the
// package's install script) and `npm run build:native`. Never fails the install: without a compiler, Node-API
// headers or a BLAS it prints one line saying why and how to get the fast path, and the matmuls stay on wasm.
//
// Why a direct `cc` call and not node-gyp: node-gyp downloads Node's headers (these machines have no network),
// needs Python and make, and builds a full gyp project for one C file. Node-API is ABI-stable and its headers
// ship with every Node install (<prefix>/include/node), and the addon's Node-API symbols resolve against the
// running node binary at load time, so one compiler call is all it takes.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'build', 'sae_blas.node');
const log = join(here, 'build', 'build.log');
const HOW = process.platform === 'darwin'
  ? 'install the Xcode command line tools (xcode-select --install), then `npm run build:native`'
  : 'install a C compiler and OpenBLAS (Debian/Ubuntu: apt-get install gcc libopenblas-dev), then `npm run build:native`';

function skip(why) {
  console.log(`sae-train: native BLAS matmuls not built (${why}); matmuls run on wasm. For the faster path: ${HOW}.`);
  process.exit(0);
}

/** Node-API headers: $NODE_API_HEADERS, then the running node's own install prefix, then the usual system places. */
function headerDir() {
  const prefix = dirname(dirname(process.execPath));
  const candidates = [process.env.NODE_API_HEADERS, join(prefix, 'include', 'node'), '/usr/include/node', '/usr/local/include/node'];
  return candidates.find((d) => d && existsSync(join(d, 'node_api.h')));
}

/** The linker arguments for the machine's BLAS, or undefined. */
function blasLinkArgs(cc) {
  if (process.platform === 'darwin') return ['-framework', 'Accelerate', '-undefined', 'dynamic_lookup'];
  // -lopenblas needs the development symlink (libopenblas-dev); the runtime library alone (libopenblas0) is enough
  // when linked by its full path, which ldconfig knows.
  const probe = spawnSync(cc, ['-x', 'c', '-', '-o', '/dev/null', '-lopenblas'], { input: 'void openblas_set_num_threads(int);int main(){openblas_set_num_threads(1);return 0;}' });
  if (probe.status === 0) return ['-lopenblas'];
  try {
    const lib = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' => ')[1]?.trim())
      .find((p) => p && /\/libopenblas\.so\.0$/.test(p));
    return lib ? [lib] : undefined;
  } catch {
    return undefined;
  }
}

if (process.env.SAE_TRAIN_NO_NATIVE === '1') skip('SAE_TRAIN_NO_NATIVE=1');
if (process.platform !== 'linux' && process.platform !== 'darwin') skip(`no build recipe for ${process.platform}`);
const cc = process.env.CC || 'cc';
if (spawnSync(cc, ['--version']).status !== 0) skip(`no C compiler: \`${cc}\` did not run`);
const headers = headerDir();
if (!headers) skip(`Node-API headers (node_api.h) not found under ${dirname(dirname(process.execPath))}/include/node; set NODE_API_HEADERS to their folder`);
const link = blasLinkArgs(cc);
if (!link) skip('OpenBLAS not found (no libopenblas.so for the linker)');

mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.tmp-${process.pid}`;
const args = ['-O2', '-std=c11', '-shared', '-fPIC', '-pthread', '-Wall', '-I', headers, join(here, 'sae_blas.c'), '-o', tmp, ...link];
const r = spawnSync(cc, args, { encoding: 'utf8' });
writeFileSync(log, `${cc} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
if (r.status !== 0) {
  rmSync(tmp, { force: true });
  skip(`compiling native/sae_blas.c failed, see ${log}`);
}
renameSync(tmp, out);
try {
  const blas = createRequire(import.meta.url)(out);
  const i = blas.info();
  console.log(`sae-train: native BLAS matmuls built (${i.name} ${i.version}${i.core ? ` ${i.core}` : ''}): ${out}`);
} catch (e) {
  rmSync(out, { force: true });
  skip(`the built addon does not load: ${String(e?.message ?? e).split('\n')[0]}`);
}
