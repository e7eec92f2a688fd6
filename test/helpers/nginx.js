// nginx in the foreground from a generated config in a temp dir (pid file,
// logs and every temp path inside it), for the end-to-end tests and the
// benchmarks alike: the one place that writes an nginx.conf. Plain JavaScript
// with JSDoc types for the reason given in processes.js.

import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLEAN_PATH, freePort, isRoot, serverHandle, tempDir, waitForServer } from "./processes.js";

/** @typedef {import("./processes.js").ProcessGroup} ProcessGroup */
/** @typedef {import("./processes.js").Proc} Proc */

/**
 * @typedef {object} NginxOptions
 * @property {string} [http] Text inside `http { }` before the generated server block (upstreams, or whole server blocks).
 * @property {string} [server] Text inside the generated `server { }` on `port`; without it there is no generated server block.
 * @property {number} [port] The port of the generated server block (or of the caller's, to wait for); default: a free one.
 * @property {number[]} [morePorts] Ports of server blocks in `http` to wait for as well.
 * @property {string} [dir] The prefix directory; default: a fresh temp dir.
 * @property {boolean} [masterProcess] A master and one worker; default: one process.
 * @property {string} [user] The worker's `user` line; default `nobody nogroup` for a master process run as root.
 * @property {number} [workerConnections] Default 512.
 * @property {string} [errorLogLevel] Default `info`.
 * @property {boolean} [accessLog] Default true.
 */

/**
 * @typedef {import("./processes.js").Server & { dir: string; errorLines(): string[] }} Nginx
 * `errorLines()`: the lines of the error log at level error or worse.
 */

/** nginx's stock fastcgi_params (Debian's), used when /etc/nginx/fastcgi_params is not there. */
export const STOCK_FASTCGI_PARAMS = `fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;
fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;
fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;
fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  REMOTE_USER        $remote_user;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;
`;

/** nginx's stock scgi_params (Debian's, without its HTTP_HOST comment), used when /etc/nginx/scgi_params is not there. */
export const STOCK_SCGI_PARAMS = `scgi_param  REQUEST_METHOD     $request_method;
scgi_param  REQUEST_URI        $request_uri;
scgi_param  QUERY_STRING       $query_string;
scgi_param  CONTENT_TYPE       $content_type;
scgi_param  DOCUMENT_URI       $document_uri;
scgi_param  DOCUMENT_ROOT      $document_root;
scgi_param  SCGI               1;
scgi_param  SERVER_PROTOCOL    $server_protocol;
scgi_param  REQUEST_SCHEME     $scheme;
scgi_param  HTTPS              $https if_not_empty;
scgi_param  REMOTE_ADDR        $remote_addr;
scgi_param  REMOTE_PORT        $remote_port;
scgi_param  SERVER_PORT        $server_port;
scgi_param  SERVER_NAME        $server_name;
`;

/** nginx's stock uwsgi_params (Debian's, without its HTTP_HOST comment), used when /etc/nginx/uwsgi_params is not there. */
export const STOCK_UWSGI_PARAMS = `uwsgi_param  QUERY_STRING       $query_string;
uwsgi_param  REQUEST_METHOD     $request_method;
uwsgi_param  CONTENT_TYPE       $content_type;
uwsgi_param  CONTENT_LENGTH     $content_length;
uwsgi_param  REQUEST_URI        $request_uri;
uwsgi_param  PATH_INFO          $document_uri;
uwsgi_param  DOCUMENT_ROOT      $document_root;
uwsgi_param  SERVER_PROTOCOL    $server_protocol;
uwsgi_param  REQUEST_SCHEME     $scheme;
uwsgi_param  HTTPS              $https if_not_empty;
uwsgi_param  REMOTE_ADDR        $remote_addr;
uwsgi_param  REMOTE_PORT        $remote_port;
uwsgi_param  SERVER_PORT        $server_port;
uwsgi_param  SERVER_NAME        $server_name;
`;

/**
 * Lines at level error or worse in an nginx log text.
 * @param {string} text
 */
export function nginxErrorLines(text) {
  return text.split("\n").filter((line) => /\[(error|crit|alert|emerg)\]/.test(line));
}

/**
 * The whole nginx.conf.
 * @param {string} dir
 * @param {number} port
 * @param {NginxOptions} options
 */
export function nginxConfig(dir, port, options) {
  const master = options.masterProcess ?? false;
  const user = options.user ?? (master && isRoot ? "nobody nogroup" : undefined);
  const server =
    options.server === undefined
      ? ""
      : `  server {\n    listen 127.0.0.1:${port};\n    server_name localhost;\n${options.server}\n  }\n`;
  return `# Generated by test/helpers/nginx.js
daemon off;
master_process ${master ? "on" : "off"};
${master ? `worker_processes 1;\n${user ? `user ${user};` : ""}` : ""}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log ${options.errorLogLevel ?? "info"};
events { worker_connections ${options.workerConnections ?? 512}; }
http {
  access_log ${options.accessLog === false ? "off" : `${dir}/access.log`};
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  client_max_body_size 0;
${options.http ?? ""}
${server}}
`;
}

/**
 * Starts nginx in the foreground with a generated config and waits until it
 * listens on 127.0.0.1 at `port` (and `morePorts`).
 * @param {ProcessGroup} group
 * @param {string} binary
 * @param {NginxOptions} options
 * @returns {Promise<Nginx>}
 */
export async function startNginx(group, binary, options) {
  const dir = options.dir ?? tempDir(group, "tsgi-nginx-");
  mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  writeFileSync(join(dir, "nginx.conf"), nginxConfig(dir, port, options));
  const proc = group.spawn(
    "nginx",
    binary,
    ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")],
    { env: { PATH: CLEAN_PATH } },
  );
  const errorLog = () =>
    existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : "";
  await waitForServer(
    proc,
    [port, ...(options.morePorts ?? [])],
    () => `error.log:\n${errorLog()}`,
  );
  return {
    ...serverHandle(proc, port, errorLog),
    dir,
    errorLines: () => nginxErrorLines(errorLog()),
  };
}

/**
 * Starts nginx with `site` (a filled example for the http { } context, holding
 * its own server block, listening where `site` is told) next
 * to the distribution's fastcgi_params, scgi_params and uwsgi_params, as
 * `include fastcgi_params` finds them in /etc/nginx. A master and one worker, which runs as nobody when we are root.
 * @param {ProcessGroup} group
 * @param {string} binary
 * @param {(listen: string) => string} site
 * @returns {Promise<Nginx>}
 */
export async function startNginxSite(group, binary, site) {
  const dir = tempDir(group, "tsgi-nginx-");
  const port = await freePort();
  for (const [name, stock] of [
    ["fastcgi_params", STOCK_FASTCGI_PARAMS],
    ["scgi_params", STOCK_SCGI_PARAMS],
    ["uwsgi_params", STOCK_UWSGI_PARAMS],
  ]) {
    const system = join("/etc/nginx", name);
    if (existsSync(system)) copyFileSync(system, join(dir, name));
    else writeFileSync(join(dir, name), stock);
  }
  writeFileSync(join(dir, "site.conf"), site(`127.0.0.1:${port}`));
  return startNginx(group, binary, {
    dir,
    port,
    masterProcess: true,
    workerConnections: 1024,
    http: `  include ${dir}/site.conf;`,
  });
}
