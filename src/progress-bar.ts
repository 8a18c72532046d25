// A progress bar on stderr while Model.load runs: weights uploaded (bytes done of all, rate, ETA), then
// pipelines compiled. Drawn only on a terminal, and cleared when the load ends, so piped output is unchanged.
import cliProgress, { type Options, type Params } from 'cli-progress';
import type { LoadPhase, LoadProgress } from './api.js';
import { bytesText } from './codegen/stats.js';

// a CommonJS package: its exports come as one object
const { Format, SingleBar } = cliProgress;

export interface LoadProgressBar {
  /** LoadOptions.onProgress; the bar ends by itself when the last pipeline is compiled */
  readonly onProgress: LoadProgress;
  /** ends the bar, for a load that failed */
  stop(): void;
}

const phaseNames: Readonly<Record<LoadPhase, string>> = { upload: 'uploading weights', compile: 'compiling pipelines' };

interface Payload {
  readonly phase: LoadPhase;
  readonly name: string;
}

function formatLine(options: Options, params: Params, payload: Payload): string {
  const seconds = (Date.now() - params.startTime) / 1000;
  const bar = Format.BarFormat(params.progress, options);
  const eta = Number.isFinite(params.eta) && params.value > 0 ? `ETA ${Format.TimeFormat(params.eta, options, 1)}` : 'ETA -';
  const size = (n: number): string => bytesText(n, false);
  const amount =
    payload.phase === 'upload'
      ? `${size(params.value)} of ${size(params.total)}, ${seconds > 0 ? size(params.value / seconds) : '-'}/s`
      : `${params.value} of ${params.total}`;
  return `${phaseNames[payload.phase]} ${bar} ${amount}, ${eta}  ${payload.name}`;
}

/** A bar for Model.load's onProgress when `stream` is a terminal; undefined otherwise. One bar serves loads one after another. */
export function loadProgressBar(stream: NodeJS.WriteStream = process.stderr): LoadProgressBar | undefined {
  if (!stream.isTTY) return undefined;
  // no handler on SIGINT (Ctrl-C still ends the process), so the cursor is left shown
  const bar = new SingleBar({
    stream,
    format: formatLine as Options['format'],
    barsize: 24,
    clearOnComplete: true,
    gracefulExit: false,
    hideCursor: false,
    etaBuffer: 32,
  });
  let phase: LoadPhase | undefined;
  const stop = (): void => {
    bar.stop();
    phase = undefined;
  };
  return {
    onProgress(done, total, name, p) {
      if (p !== phase) {
        if (phase) bar.stop();
        bar.start(total, 0, { phase: p, name });
        phase = p;
      }
      bar.update(done, { phase: p, name });
      if (p === 'compile' && done === total) stop();
    },
    stop,
  };
}
