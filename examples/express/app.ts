// An Express application under tsgi; the same file runs as
//   tsgi serve examples/express/app.ts
//   tsgi cgi examples/express/app.ts                    (from a web server's CGI)
//   tsgi fcgi examples/express/app.ts --listen app.sock (behind nginx, Apache, lighttpd)
// Routes are relative to where the app is mounted: behind nginx at /shop (with
// fastcgi_split_path_info, see examples/deploy/nginx), /shop/users/7 reaches
// app.get("/users/:id"), with req.baseUrl "/shop".

import express from "express";
import { fromNodeHandler } from "tsgi";

const app = express();
app.use(express.json());
app.use(express.urlencoded({ extended: false }));

app.get("/", (req, res) => {
  res.type("text/plain").send(`Hello from Express, mounted at "${req.baseUrl}"!\n`);
});

app.get("/users/:id", (req, res) => {
  res.json({ id: req.params.id, query: req.query, url: req.originalUrl });
});

app.post("/echo", (req, res) => {
  res.json({ youSent: req.body as unknown });
});

app.get("/login", (req, res) => {
  res.cookie("session", "s3cr3t", { httpOnly: true, sameSite: "lax" });
  res.cookie("theme", "dark");
  // Under the mount point, wherever that is.
  res.redirect(`${req.baseUrl}/users/me`);
});

// Each line reaches the client as it is written (behind nginx: fastcgi_buffering off).
app.get("/countdown", async (req, res) => {
  res.type("text/plain");
  for (let n = 3; n > 0; n--) {
    res.write(`${n}…\n`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  res.end("liftoff\n");
});

export default fromNodeHandler(app);
