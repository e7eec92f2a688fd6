// The Express hello as a TSGI application, through tsgi's Node adapter.
import { fromNodeHandler } from "tsgi/node";
import { create } from "./express.js";

export default fromNodeHandler(create());
