// An Express application served through TSGI: the same file runs under
// `tsgi cgi`, `tsgi fcgi` and `tsgi serve` (try: tsgi serve examples/express-app.js).

import express from "express";
import { fromNodeHandler } from "tsgi";

const app = express();
app.use(express.json());

app.get("/", (req, res) => {
  res.type("text/plain").send(`Hello from Express, ${req.ip}!\n`);
});

app.post("/echo", (req, res) => {
  /** @type {unknown} */
  const sent = req.body;
  res.json({ youSent: sent });
});

app.get("/login", (req, res) => {
  res.cookie("session", "s3cr3t", { httpOnly: true, sameSite: "lax" });
  res.cookie("theme", "dark");
  // req.baseUrl is where the application is mounted (SCRIPT_NAME): "" at the root.
  res.redirect(req.baseUrl + "/");
});

// Streams: each line reaches the client as it is written.
app.get("/countdown", async (req, res) => {
  res.type("text/plain");
  for (let n = 3; n > 0; n--) {
    res.write(`${n}…\n`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  res.end("liftoff\n");
});

export default fromNodeHandler(app);
