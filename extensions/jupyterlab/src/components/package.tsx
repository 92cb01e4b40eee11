/** The Package action: start a job, show its progress, then the context and image, or why not. */
import * as React from 'react';

import { ApiError, Params, requestAPI } from '../request';
import { IPackageJob } from '../tokens';
import { ErrorBox } from './common';

const POLL_MS = 700;

export function PackageAction(props: {
  ref_: string;
  what: string;
  storeParams: Params;
  buildImage: boolean;
}): JSX.Element {
  const [build, setBuild] = React.useState(props.buildImage);
  const [job, setJob] = React.useState<IPackageJob | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const timer = React.useRef<number>();
  React.useEffect(() => () => window.clearTimeout(timer.current), []);

  const follow = async (jobId: string) => {
    try {
      const next = await requestAPI<IPackageJob>(`package/${encodeURIComponent(jobId)}`, props.storeParams);
      setJob(next);
      if (next.state === 'queued' || next.state === 'running') {
        timer.current = window.setTimeout(() => void follow(jobId), POLL_MS);
      }
    } catch (e) {
      setError((e as ApiError).message);
    }
  };

  const start = async () => {
    setError(null);
    setJob(null);
    try {
      const started = await requestAPI<IPackageJob>('package', props.storeParams, {
        method: 'POST',
        body: JSON.stringify({ ref: props.ref_, build })
      });
      setJob(started);
      void follow(started.job_id);
    } catch (e) {
      setError((e as ApiError).message);
    }
  };

  const busy = job !== null && (job.state === 'queued' || job.state === 'running');
  return (
    <div className="nbt-package" aria-label="Package">
      <div className="nbt-action-row">
        <button className="nbt-button nbt-primary" disabled={busy} onClick={() => void start()}>
          {busy ? 'Packaging…' : 'Package'}
        </button>
        <label className="nbt-check">
          <input type="checkbox" checked={build} onChange={e => setBuild(e.target.checked)} disabled={busy} />
          build image
        </label>
        <span className="nbt-hint">a serving container for {props.what}</span>
      </div>
      {busy && job && (
        <div className="nbt-progress" role="progressbar" aria-label="Packaging progress"
          aria-valuenow={Math.round(job.fraction * 100)} aria-valuemin={0} aria-valuemax={100}>
          <div className="nbt-progress-bar" style={{ width: `${Math.round(job.fraction * 100)}%` }} />
          <span>{job.step}</span>
        </div>
      )}
      {job?.state === 'done' && job.result && (
        <div className="nbt-success" role="status" aria-label="Package result">
          <strong>Packaged {job.result.package_id}</strong>
          <dl>
            <dt>build context</dt>
            <dd><code>{job.result.context}</code></dd>
            <dt>image</dt>
            <dd>
              {job.result.image ? (
                <code>{job.result.image.tag}</code>
              ) : (
                <>
                  <code>{job.result.tag}</code> not built: build it with{' '}
                  <code>{job.result.build_command}</code>
                </>
              )}
            </dd>
          </dl>
        </div>
      )}
      {job?.state === 'failed' && <ErrorBox title="Packaging failed" message={job.error ?? 'unknown error'} />}
      {error && <ErrorBox title="Packaging could not start" message={error} />}
    </div>
  );
}
