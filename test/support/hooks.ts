// Mocha root hooks: whatever a test did, every server it started is stopped at the end.
import { stopAllPostgres } from "./postgres";

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopAllPostgres();
  },
};
