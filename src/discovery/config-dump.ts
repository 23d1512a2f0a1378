// `fulcrum config dump` (GET /api/config/dump): the config file as it was
// loaded, comments and all, with the backends added through the admin API
// appended to their services' lists, so that saving it and reloading keeps
// the running set (the next reload otherwise rebuilds from the file, as in
// HAProxy). Entries that name DNS records stay names: they are re-resolved.
// Weights and drain/maint states set at run time are not part of a config.
// admin.token is redacted (a secret the API does not hand out).
import { readFile } from 'node:fs/promises';
import { isMap, isSeq, parseDocument } from 'yaml';
import type { FulcrumRuntime } from '../runtime.js';

export async function configDump(runtime: FulcrumRuntime): Promise<string> {
  const file = runtime.fileConfig().file;
  const text = runtime.fileConfig().text ?? (await readFile(file, 'utf8'));
  const doc = parseDocument(text);
  const services = doc.get('services');
  let added = 0;
  let redacted = false;
  for (const [service, entries] of runtime.apiBackends()) {
    if (!isSeq(services)) break;
    const node = services.items.find((item) => isMap(item) && item.get('name') === service);
    const backends = isMap(node) ? node.get('backends') : undefined;
    if (!isSeq(backends)) continue;
    for (const entry of entries) {
      backends.add(doc.createNode(entry.written));
      added++;
    }
  }
  // The token is a secret: the API does not hand it out (token_file keeps it out of the file anyway).
  const admin = doc.get('admin');
  if (isMap(admin) && admin.has('token')) {
    admin.set('token', 'REDACTED-put-the-admin-token-here');
    redacted = true;
  }
  const header = `# fulcrum config dump of ${file} at ${new Date().toISOString()}: the file as loaded` + (added > 0 ? `, with ${added} backend${added === 1 ? '' : 's'} added through the admin API` : '') + '\n' + (redacted ? '# admin.token is redacted: put the token back (or use admin.token_file) before using this file\n' : '');
  return header + doc.toString({ lineWidth: 0 });
}
