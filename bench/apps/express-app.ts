// The Express app bench/cgi-startup.js starts, under `tsgi cgi` and built by `tsgi build`.
import express from "express";
import { fromNodeHandler } from "tsgi/node";

const app = express();
app.use(express.json());
app.get("/hello", (_req, res) => {
  res.type("text/plain").send("hello from express\n");
});

export default fromNodeHandler(app);
