// The Hono hello as a TSGI application, through tsgi's fetch adapter.
import { fromFetchHandler } from "tsgi/fetch";
import { create } from "./hono.js";

export default fromFetchHandler(create().fetch);
