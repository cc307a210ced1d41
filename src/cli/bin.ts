#!/usr/bin/env node
import { main } from './main.js';
import { installStopHandlers } from '../parallel/stop-signal.js';

// SIGUSR1/SIGTERM (Slurm preemption, workers): step loops save their state and exit with code 75.
installStopHandlers();

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
