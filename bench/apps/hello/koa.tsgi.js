// The Koa hello as a TSGI application, through tsgi's Node adapter.
import { fromNodeHandler } from "tsgi/node";
import { create } from "./koa.js";

export default fromNodeHandler(create().callback());
