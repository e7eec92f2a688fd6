// The smallest TSGI application: `tsgi cgi examples/hello.js`.

/** @type {import("tsgi").Application} */
export default function hello(environ, startResponse) {
  startResponse("200 OK", [["Content-Type", "text/plain; charset=utf-8"]]);
  return ["Hello, world!\n"];
}
