// binding.gyp (node-gyp, prebuildify) and CMakeLists.txt (cmake-js, npm
// install) must build the same addon: the same four source groups (three
// static libraries and the N-API glue linked into fulcrum.node), each group
// exactly the .cc files of its folder under native/. native/bpf holds BPF
// programs in C and their generated instruction headers, built by neither
// (scripts/generate-bpf.mjs; the engine includes the headers).
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

/** Folder under native/, CMake list, gyp target. */
const GROUPS = [
  { folder: 'engine', list: 'FULCRUM_ENGINE_SOURCES', target: 'fulcrum_engine' },
  { folder: 'ha', list: 'FULCRUM_HA_SOURCES', target: 'fulcrum_ha' },
  { folder: 'bench', list: 'FULCRUM_BENCH_SOURCES', target: 'fulcrum_bench' },
  { folder: 'addon', list: 'FULCRUM_ADDON_SOURCES', target: 'fulcrum' },
] as const;
const LIBRARIES = GROUPS.filter((g) => g.target !== 'fulcrum').map((g) => g.target);

const cmake = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');

function cmakeSources(list: string): string[] {
  const block = new RegExp(`set\\(${list}([^)]*)\\)`).exec(cmake);
  if (!block) throw new Error(`CMakeLists.txt has no set(${list} ...)`);
  return block[1]!.split(/\s+/).filter((s) => s.endsWith('.cc')).sort();
}

interface GypTarget {
  target_name: string;
  type?: string;
  sources: string[];
  dependencies?: string[];
}

// binding.gyp is a Python literal; with its comments removed it is JSON.
const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '')) as { targets: GypTarget[] };

function gypTarget(name: string): GypTarget {
  const target = gyp.targets.find((x) => x.target_name === name);
  if (!target) throw new Error(`binding.gyp has no target "${name}"`);
  return target;
}

function folderSources(folder: string): string[] {
  return readdirSync(join(root, 'native', folder))
    .filter((name) => name.endsWith('.cc'))
    .map((name) => `native/${folder}/${name}`)
    .sort();
}

t.test('binding.gyp and CMakeLists.txt list the same sources in each group', async (t) => {
  for (const group of GROUPS) {
    t.strictSame([...gypTarget(group.target).sources].sort(), cmakeSources(group.list), group.folder);
  }
});

t.test('each group is exactly the .cc files of its folder, and there is no other folder', async (t) => {
  for (const group of GROUPS) t.strictSame(cmakeSources(group.list), folderSources(group.folder), `native/${group.folder}`);
  const folders = readdirSync(join(root, 'native'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  t.strictSame(folders.sort(), [...GROUPS.map((g) => g.folder), 'bpf'].sort());
  t.strictSame(readdirSync(join(root, 'native', 'bpf')).filter((name) => name.endsWith('.cc')), [], 'native/bpf has no C++ to build');
});

t.test('the libraries are static and linked into the one addon by both front ends', async (t) => {
  for (const name of LIBRARIES) {
    t.equal(gypTarget(name).type, 'static_library', `gyp ${name}`);
    t.match(cmake, new RegExp(`add_library\\(${name} STATIC \\$\\{FULCRUM_\\w+_SOURCES\\}\\)`), `cmake ${name}`);
  }
  t.strictSame([...(gypTarget('fulcrum').dependencies ?? [])].sort(), [...LIBRARIES].sort());
  const link = /target_link_libraries\(\$\{PROJECT_NAME\} PRIVATE ([^)]*)\)/.exec(cmake);
  t.ok(link, 'CMakeLists.txt links the addon');
  for (const name of LIBRARIES) t.ok(link![1]!.split(/\s+/).includes(name), `cmake links ${name} into the addon`);
});
