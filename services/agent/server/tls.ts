// TLS for the one port: a tls.Server that never listens itself. The one-port
// listener hands it each accepted TCP socket; once the handshake is done, ALPN
// says which server gets the decrypted socket (h2 → http2, anything else →
// HTTP/1.1), so gRPC, Connect, gRPC-Web and SSE all work over HTTPS.
// The certificate and key are files; `reload()` reads them again (SIGHUP) and
// swaps the context for new handshakes only, so open connections stay up.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import type * as net from "node:net";
import * as tls from "node:tls";
import { ConfigError } from "../../shared/config.js";
import { type Logger, silentLogger } from "../../shared/log.js";

export interface TlsFiles {
  /** PEM certificate chain (leaf first). */
  certFile: string;
  /** PEM private key of the leaf certificate. */
  keyFile: string;
}

type AlpnProtocol = "h2" | "http1";

export interface TlsTerminator {
  /**
   * Where finished handshakes go (set once, by the listener): the decrypted socket and the
   * protocol its ALPN chose. Returns what to call with each accepted TCP socket.
   */
  serve(onSecure: (protocol: AlpnProtocol, secure: tls.TLSSocket) => void): (socket: net.Socket) => void;
  /** Reads the files again and uses them for new connections; on any problem keeps the old ones and throws. */
  reload(): Promise<void>;
  /** SHA-256 fingerprint of the certificate now in use, for logs and tests. */
  fingerprint(): string;
}

/** A client that has not finished its handshake within this time is dropped. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

interface Loaded {
  cert: Buffer;
  key: Buffer;
  fingerprint: string;
}

/**
 * Reads and checks a certificate and key; every failure is a ConfigError naming the file:
 * missing or unreadable, not PEM, or a key that does not belong to the certificate.
 */
export async function loadTlsFiles(files: TlsFiles): Promise<Loaded> {
  const read = (file: string, what: string, flag: string) =>
    readFile(file).catch((error: NodeJS.ErrnoException) => {
      throw new ConfigError(`cannot read TLS ${what} ${flag} ${file}: ${error.code ?? error.message}`);
    });
  const [cert, key] = await Promise.all([
    read(files.certFile, "certificate", "--tls-cert / AGENTD_TLS_CERT"),
    read(files.keyFile, "key", "--tls-key / AGENTD_TLS_KEY"),
  ]);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new ConfigError(`TLS certificate ${files.certFile} is not a PEM certificate`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(`TLS key ${files.keyFile} is not a PEM private key (or it is encrypted)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError(`TLS key ${files.keyFile} does not belong to the certificate ${files.certFile}`);
  }
  try {
    tls.createSecureContext({ cert, key });
  } catch (error) {
    throw new ConfigError(
      `TLS certificate ${files.certFile} with key ${files.keyFile} cannot be used: ${(error as Error).message}`,
    );
  }
  return { cert, key, fingerprint: leaf.fingerprint256 };
}

/** Builds the terminator from files already checked by `loadTlsFiles` (start-up fails before listening). */
export async function createTlsTerminator(files: TlsFiles, opts: { logger?: Logger } = {}): Promise<TlsTerminator> {
  const log = opts.logger ?? silentLogger();
  let current = await loadTlsFiles(files);
  const server = tls.createServer({
    cert: current.cert,
    key: current.key,
    // The client's preference wins (node picks the first of the client's list that we offer);
    // a client that sends no ALPN at all is served HTTP/1.1.
    ALPNProtocols: ["h2", "http/1.1"],
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    minVersion: "TLSv1.2",
  });
  // Failed handshakes (wrong protocol, scanners, timeouts): node destroys the socket.
  server.on("tlsClientError", (err) => log.debug({ err }, "TLS handshake failed"));

  return {
    serve(onSecure) {
      server.on("secureConnection", (secure: tls.TLSSocket) =>
        onSecure(secure.alpnProtocol === "h2" ? "h2" : "http1", secure),
      );
      // tls.Server's own connection listener wraps the socket and runs the handshake.
      return (socket) => server.emit("connection", socket);
    },
    async reload() {
      const next = await loadTlsFiles(files);
      server.setSecureContext({ cert: next.cert, key: next.key });
      const previous = current.fingerprint;
      current = next;
      log.info({ certFile: files.certFile, fingerprint: next.fingerprint, previous }, "TLS certificate reloaded");
    },
    fingerprint: () => current.fingerprint,
  };
}
