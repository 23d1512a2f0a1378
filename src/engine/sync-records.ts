// The engine's session-sync records (native/engine/sync_journal.h SyncRecord,
// 32 bytes, little-endian on every platform Fulcrum builds for) and their
// named form: slots are this node's own, so what leaves the node names the
// service and the backend's address instead (src/sync/wire.ts).
export const NATIVE_SYNC_RECORD_BYTES = 32;

export type SessionKind = 'sticky' | 'udp';
const KIND_CODE: Record<SessionKind, number> = { sticky: 1, udp: 2 };

/** One entry with node-local slots, as the engine gives and takes it. */
export interface SlotRecord {
  kind: SessionKind;
  serviceSlot: number;
  backendSlot: number;
  ageMs: number;
  /** sticky: hash of the client address; udp: hash of the 5-tuple (native/engine/flow_hash.h). */
  key: bigint;
  /** Part of a full copy for a peer that (re)started (dumpSync), not a change; only takeSync sets it. */
  dump?: true;
}

/** One entry as peers exchange it. */
export interface SessionRecord {
  kind: SessionKind;
  service: string;
  /** The backend's address as the config spells it canonically (Endpoint.text). */
  backend: string;
  ageMs: number;
  key: bigint;
  /** Taken from a full copy (dumpSync): goes only to the peers the copy is for. */
  dump?: true;
}

/** SyncRecord::flags bit: a dump record (native/engine/sync_journal.h kSyncRecordDump). */
const FLAG_DUMP = 1;

/** Decode what takeSync() returned; records of an unknown kind are skipped. */
export function decodeSlotRecords(buffer: ArrayBuffer): SlotRecord[] {
  const view = new DataView(buffer);
  const records: SlotRecord[] = [];
  for (let offset = 0; offset + NATIVE_SYNC_RECORD_BYTES <= buffer.byteLength; offset += NATIVE_SYNC_RECORD_BYTES) {
    const code = view.getUint8(offset);
    const kind = code === 1 ? 'sticky' : code === 2 ? 'udp' : undefined;
    if (kind === undefined) continue;
    const record: SlotRecord = {
      kind,
      serviceSlot: view.getUint32(offset + 4, true),
      backendSlot: view.getUint32(offset + 8, true),
      ageMs: view.getUint32(offset + 12, true),
      key: view.getBigUint64(offset + 16, true),
    };
    if ((view.getUint8(offset + 1) & FLAG_DUMP) !== 0) record.dump = true;
    records.push(record);
  }
  return records;
}

/** Encode records for installSync(). */
export function encodeSlotRecords(records: readonly SlotRecord[]): Uint8Array {
  const bytes = new Uint8Array(records.length * NATIVE_SYNC_RECORD_BYTES);
  const view = new DataView(bytes.buffer);
  records.forEach((r, i) => {
    const offset = i * NATIVE_SYNC_RECORD_BYTES;
    view.setUint8(offset, KIND_CODE[r.kind]);
    view.setUint32(offset + 4, r.serviceSlot, true);
    view.setUint32(offset + 8, r.backendSlot, true);
    view.setUint32(offset + 12, Math.min(Math.max(0, Math.trunc(r.ageMs)), 0xffffffff), true);
    view.setBigUint64(offset + 16, r.key, true);
  });
  return bytes;
}
