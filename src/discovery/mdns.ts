/**
 * Zero-configuration discovery over mDNS / DNS-SD: advertises this node as
 * `_gandalf._tcp` on its mgmt port with TXT records (node id, cluster name,
 * protocol version, arch, roles) and browses continuously for nodes of the
 * same cluster. One responder per interface (multicast-dns answers on one
 * interface per socket).
 */
import Bonjour from 'bonjour-service';
import { sleep, type Clock } from '../core/clock';
import type { Logger } from '../core/logger';

export const SERVICE_TYPE = 'gandalf';
export const MDNS_PROTOCOL_VERSION = '1';

export interface Advertisement {
  id: string;
  cluster: string;
  port: number;
  arch: string;
  roles: string;
}

export interface Discovered {
  id: string;
  endpoint: string;
  cluster: string;
  arch: string;
}

export interface MdnsOptions {
  /** IPv4 addresses of the interfaces to use. */
  interfaces: string[];
  self: Advertisement;
  onDiscovered: (peer: Discovered) => void;
  logger: Logger;
  clock: Clock;
}

/** Longest a stop waits for the goodbye packets. */
const UNPUBLISH_WAIT_MS = 1000;

export class MdnsDiscovery {
  private readonly instances: Bonjour[] = [];

  constructor(private readonly options: MdnsOptions) {}

  start(): void {
    const { self, logger } = this.options;
    for (const address of this.options.interfaces) {
      const bonjour = new Bonjour({ interface: address, bind: '0.0.0.0' } as never, (err: Error) => logger.warn('mDNS error', { interface: address, err }));
      this.instances.push(bonjour);
      bonjour.publish({
        name: self.id,
        type: SERVICE_TYPE,
        protocol: 'tcp',
        port: self.port,
        disableIPv6: true,
        txt: { id: self.id, cluster: self.cluster, proto: MDNS_PROTOCOL_VERSION, arch: self.arch, roles: self.roles },
      });
      const browser = bonjour.find({ type: SERVICE_TYPE, protocol: 'tcp' });
      const seen = (service: Bonjour.Service) => this.seen(service);
      browser.on('up', seen);
      browser.on('txt-update', seen);
      browser.on('srv-update', seen);
      logger.info('mDNS discovery on', { interface: address, service: `_${SERVICE_TYPE}._tcp` });
    }
  }

  private seen(service: Bonjour.Service): void {
    const txt = (service.txt ?? {}) as Record<string, unknown>;
    const id = typeof txt.id === 'string' ? txt.id : undefined;
    const cluster = typeof txt.cluster === 'string' ? txt.cluster : undefined;
    if (!id || id === this.options.self.id || cluster !== this.options.self.cluster) return;
    if (txt.proto !== MDNS_PROTOCOL_VERSION) return;
    const address = [service.referer?.address, ...(service.addresses ?? [])].find((a) => a && /^\d+\.\d+\.\d+\.\d+$/.test(a));
    if (!address || !service.port) return;
    this.options.onDiscovered({ id, endpoint: `http://${address}:${service.port}`, cluster, arch: String(txt.arch ?? '') });
  }

  stop(): Promise<void> {
    return Promise.all(
      this.instances.splice(0).map(
        (b) =>
          new Promise<void>((resolve) => {
            b.unpublishAll(() => b.destroy(() => resolve()));
            void sleep(this.options.clock, UNPUBLISH_WAIT_MS).then(resolve);
          }),
      ),
    ).then(() => undefined);
  }
}
