// The Express 5 hello of bench/apps.js: "Hello, world!" as text/plain on GET /.
import express from "express";

export function create() {
  const app = express();
  app.get("/", (_req, res) => {
    res.type("text/plain").send("Hello, world!");
  });
  return app;
}
