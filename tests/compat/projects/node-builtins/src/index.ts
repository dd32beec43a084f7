import os from "os";
import { readFileSync } from "fs";
import legacy from "./legacy.cjs";

export default {
  fetch(): Response {
    return Response.json({
      eol: os.EOL,
      fs: typeof readFileSync,
      sha: legacy.sha256("abc"),
      emitted: legacy.emitted(),
    });
  },
};
