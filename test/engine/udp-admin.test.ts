// A protocol: udp service as the admin API and /metrics show it: the flow
// table's counters and datagrams each way, exact after real traffic.
import t from 'tap';
import { TOKEN, http, startRuntime } from '../helpers/admin.js';
import { parsePrometheus, sampleValue } from '../helpers/prometheus.js';
import { startUdpBackend, udpClient } from '../helpers/udp.js';

t.test('/api/services and /metrics carry a udp service\'s flows and datagrams', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { base, port } = await startRuntime(t, (listenPort) =>
    [
      'workers: 2',
      `admin: { token: ${TOKEN} }`,
      'services:',
      '  - name: game',
      '    protocol: udp',
      `    listen: 127.0.0.1:${listenPort}`,
      '    timeouts: { idle: 300ms }',
      '    backends:',
      `      - address: ${backend.address}`,
      '',
    ].join('\n'));
  const clients = await Promise.all(Array.from({ length: 3 }, () => udpClient(t)));
  for (const client of clients) {
    await client.request('ping', port);
    await client.request('pong', port);
  }
  const service = async (): Promise<any> => (await http(base, 'GET', '/api/services/game', { token: TOKEN })).json;
  let view = await service();
  t.match(view, { name: 'game', udp: { datagramsIn: 6, datagramsOut: 6, flowsCreated: 3, flowsActive: 3, datagramsDropped: 0 } });
  t.match(view.backends[0], { address: backend.address, udp: { datagramsIn: 6, datagramsOut: 6 }, active: 3 });

  // Bounded wait (5 s) for the idle timeout (300 ms) to end the flows.
  for (let i = 0; i < 100 && (await service()).udp.flowsExpired !== 3; i++) await new Promise((r) => setTimeout(r, 50));
  view = await service();
  t.match(view.udp, { flowsExpired: 3, flowsActive: 0 }, 'idle flows expired, as the API shows');

  const res = await http(base, 'GET', '/metrics', { token: TOKEN });
  t.equal(res.status, 200);
  const m = parsePrometheus(res.text);
  const l = { service: 'game' };
  t.equal(sampleValue(m, 'fulcrum_udp_datagrams_total', { ...l, direction: 'in' }), 6);
  t.equal(sampleValue(m, 'fulcrum_udp_datagrams_total', { ...l, direction: 'out' }), 6);
  t.equal(sampleValue(m, 'fulcrum_udp_datagrams_dropped_total', l), 0);
  t.equal(sampleValue(m, 'fulcrum_udp_flows_total', { ...l, event: 'created' }), 3);
  t.equal(sampleValue(m, 'fulcrum_udp_flows_total', { ...l, event: 'expired' }), 3);
  t.equal(sampleValue(m, 'fulcrum_udp_flows_total', { ...l, event: 'evicted' }), 0);
  t.equal(sampleValue(m, 'fulcrum_udp_flows_active', l), 0);
  t.equal(m.get('fulcrum_udp_flows_total')?.type, 'counter');
  t.equal(m.get('fulcrum_udp_flows_active')?.type, 'gauge');
});
