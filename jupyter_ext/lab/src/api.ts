/**
 * The jupyter_xcomposer REST API, seen from the browser: start a job, follow it, cancel it.
 *
 * Requests go through ServerConnection, so the page's login cookie and XSRF token
 * apply as to Jupyter's own API.  Every job is owned by this browser tab
 * (`?owner=client:<id>`): when the tab goes (closed, reloaded) its jobs are
 * cancelled, so other notebooks do not wait behind them.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IProgressEvent {
  stage: string;
  done: number;
  total: number;
  tokens_per_s?: number | null;
  detail?: string;
}

export interface ICandidate {
  image: string;
  score: number;
  sha256?: string;
}

export interface IFigure {
  after: number;
  image: string;
  caption: string;
  alt: string;
  score: number;
  candidates: ICandidate[];
}

export interface IArticle {
  title: string;
  paragraphs: { text: string; kind: string }[];
  figures: IFigure[];
  [key: string]: unknown;
}

export interface ICellJSON {
  cell_type: 'markdown';
  source: string;
  metadata: Record<string, unknown>;
  attachments?: Record<string, Record<string, string>>;
}

export interface IResult {
  article?: IArticle;
  markdown?: string;
  cells?: ICellJSON[];
  cell?: ICellJSON;
  text?: string;
}

export interface IJob {
  id: string;
  state: 'queued' | 'running' | 'done' | 'error' | 'cancelled';
  events: IProgressEvent[];
  next: number;
  result: IResult | null;
  error: string | null;
}

/** The order of the pipeline's stages: progress is measured across all of them. */
const STAGES = ['library', 'outline', 'write', 'place', 'caption', 'select', 'alt', 'done'];

/** How far the whole job is, 0 to 1, from its latest progress event. */
export function overallProgress(event: IProgressEvent): number {
  if (event.stage === 'done') {
    return 1;
  }
  const index = Math.max(0, STAGES.indexOf(event.stage));
  const part = event.total > 0 ? Math.min(1, event.done / event.total) : 0;
  return (index + part) / (STAGES.length - 1);
}

export class XComposerError extends Error {}

const OWNER = `client:${Math.random().toString(36).slice(2, 12)}`;

export class XComposerApi {
  constructor(private settings = ServerConnection.makeSettings()) {
    // A tab that goes away cancels its jobs (keepalive lets the request outlive the page).
    window.addEventListener('pagehide', () => {
      const url = this.url('jobs') + `?owner=${encodeURIComponent(OWNER)}`;
      const init: RequestInit = { method: 'DELETE', keepalive: true, credentials: 'same-origin' };
      const xsrf = document.cookie.match('\\b_xsrf=([^;]*)\\b');
      if (xsrf) {
        init.headers = { 'X-XSRFToken': xsrf[1] };
      }
      void fetch(url, init).catch(() => undefined);
    });
  }

  private url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, 'xcomposer', ...parts);
  }

  private async request<T>(path: string, init: RequestInit = {}): Promise<T> {
    let reply: Response;
    try {
      reply = await ServerConnection.makeRequest(path, init, this.settings);
    } catch (err) {
      throw new XComposerError(`cannot reach the Jupyter server (${err})`);
    }
    const data = await reply.json().catch(() => ({}));
    if (!reply.ok) {
      throw new XComposerError(
        (data as { error?: string }).error || `HTTP ${reply.status} from the xcomposer API`
      );
    }
    return data as T;
  }

  status(): Promise<Record<string, unknown>> {
    return this.request(this.url('status'));
  }

  start(op: string, body: unknown): Promise<IJob> {
    const url = this.url(op) + `?owner=${encodeURIComponent(OWNER)}`;
    return this.request(url, { method: 'POST', body: JSON.stringify(body) });
  }

  describeBytes(data: Blob, mime: string): Promise<IJob> {
    const url = this.url('describe') + `?owner=${encodeURIComponent(OWNER)}&style=caption`;
    return this.request(url, { method: 'POST', body: data, headers: { 'Content-Type': mime } });
  }

  poll(job: IJob): Promise<IJob> {
    return this.request(this.url('jobs', job.id) + `?since=${job.next}&wait=10`);
  }

  cancel(job: IJob): Promise<IJob> {
    return this.request(this.url('jobs', job.id), { method: 'DELETE' });
  }

  /** Follow a job to its end, reporting each progress event; its result, or an error. */
  async follow(job: IJob, onProgress: (event: IProgressEvent) => void): Promise<IResult | null> {
    for (;;) {
      job.events.forEach(onProgress);
      if (job.state === 'done') {
        return job.result;
      }
      if (job.state === 'error') {
        throw new XComposerError(job.error || 'the job failed');
      }
      if (job.state === 'cancelled') {
        return null;
      }
      job = await this.poll(job);
    }
  }
}
