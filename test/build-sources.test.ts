// binding.gyp (node-gyp, prebuildify) and CMakeLists.txt (cmake-js, npm
// install) must build the same addon: same sources, and every .cc under
// native/ in both.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');

/** The addon's sources in CMakeLists.txt: the engine list plus the glue list. */
function cmakeSources(): string[] {
  const text = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
  return ['FULCRUM_ENGINE_SOURCES', 'FULCRUM_ADDON_SOURCES']
    .flatMap((name) => {
      const block = new RegExp(`set\\(${name}([^)]*)\\)`).exec(text);
      if (!block) throw new Error(`CMakeLists.txt has no set(${name} ...)`);
      return block[1]!.split(/\s+/).filter((s) => s.endsWith('.cc'));
    })
    .sort();
}

function gypSources(): string[] {
  // binding.gyp is a Python literal; with its comments removed it is JSON.
  const text = readFileSync(join(root, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '');
  const gyp = JSON.parse(text) as { targets: Array<{ target_name: string; sources: string[] }> };
  const target = gyp.targets.find((x) => x.target_name === 'fulcrum');
  if (!target) throw new Error('binding.gyp has no target "fulcrum"');
  return [...target.sources].sort();
}

function nativeFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return nativeFiles(path);
    return entry.name.endsWith('.cc') ? [relative(root, path)] : [];
  });
}

t.test('binding.gyp and CMakeLists.txt list the same sources', async (t) => {
  t.strictSame(gypSources(), cmakeSources());
});

t.test('every .cc under native/ is built', async (t) => {
  t.strictSame(cmakeSources(), nativeFiles(join(root, 'native')).sort());
});
