/**
 * Wire types of nbtrail's REST API (src/nbtrail/server) and the ids the extension uses.
 * Keep in sync with docs/jupyterlab.md.
 */

export const PLUGIN_ID = 'nbtrail:plugin';
export const SIDEBAR_ID = 'nbtrail-experiments';
export const REGISTRY_ID = 'nbtrail-registry';

export namespace CommandIDs {
  export const open = 'nbtrail:open';
  export const openNotebookRuns = 'nbtrail:open-notebook-runs';
  export const openRun = 'nbtrail:open-run';
  export const compareRuns = 'nbtrail:compare-runs';
  export const compareBranches = 'nbtrail:compare-branches';
  export const openSweep = 'nbtrail:open-sweep';
  export const openRegistry = 'nbtrail:open-registry';
  export const refresh = 'nbtrail:refresh';
}

/** User settings (schema/plugin.json). */
export interface ISettings {
  storePath: string;
  refreshInterval: number;
  defaultMetric: string;
  buildImage: boolean;
}

export const DEFAULT_SETTINGS: ISettings = {
  storePath: '',
  refreshInterval: 5,
  defaultMetric: '',
  buildImage: true
};

/** A JSON value as the server sends it. */
export type Value = string | number | boolean | null | Value[] | { [key: string]: Value };

/** A table with its column order: what the server sends for DataFrames. */
export interface ITable {
  columns: string[];
  rows: Value[][];
}

export interface IStoreInfo {
  location: string;
  exists: boolean;
  root_dir: string;
  version: string;
}

export interface IBranchNode {
  branch: string | null;
  runs: number;
  running: number;
  last_run: string;
}

export interface IExperimentNode {
  experiment: string;
  runs: number;
  running: number;
  last_run: string;
  branches: IBranchNode[];
}

export type RunStatus = 'running' | 'finished' | 'failed' | 'killed';

export interface IRunRow {
  run_id: string;
  name: string | null;
  experiment: string;
  status: RunStatus;
  start_time: string;
  end_time: string | null;
  duration: number | null;
  parent_id: string | null;
  branch: string | null;
  commit: string | null;
  notebook: string | null;
  error: string | null;
  /** How many children match the query (a sweep's trials): listed under it on request. */
  children: number;
  has_model: boolean;
  values: { [column: string]: Value };
}

export interface IRunsPage {
  total: number;
  offset: number;
  limit: number;
  columns: string[];
  keys: { metrics: string[]; params: string[]; tags: string[] };
  /** The metrics most rows of the page have: the columns until the user picks some. */
  key_metrics: string[];
  runs: IRunRow[];
}

export interface IDataset {
  dataset_id: string;
  name: string;
  role: string;
  fingerprint: string;
  n_rows: number | null;
  n_columns: number | null;
  schema: { name: string; dtype: string; nullable: boolean }[] | null;
  stats: { [column: string]: { [stat: string]: Value } } | null;
}

export interface IRun {
  run_id: string;
  name: string | null;
  experiment: string;
  status: RunStatus;
  start_time: string;
  end_time: string | null;
  duration: number | null;
  parent_id: string | null;
  error: string | null;
  notebook: string | null;
  params: { [key: string]: Value };
  metrics: { [key: string]: number | null };
  tags: { [key: string]: string };
  datasets: IDataset[];
  models: { [key: string]: Value }[];
  artifacts: { name: string; sha256: string; size_bytes: number; media_type: string | null }[];
  git: {
    root: string;
    commit: string | null;
    branch: string | null;
    dirty: boolean | null;
    snapshot: string | null;
  } | null;
  /** Why git is null: capture was off, or the run was not in a git repository. */
  git_note: string | null;
  env: { python: string; platform: string; packages: { [name: string]: string } | null } | null;
  code: { ref: string | null; notebook: string | null; n_cells: number } | null;
  seeds: { [key: string]: Value };
  children: string[];
}

export interface ILineage {
  root: string;
  direction: string;
  nodes: { id: string; kind: string; label: string | null }[];
  edges: { src: string; dst: string; relation: string }[];
}

/** A figure, image, table, text or dict a run logged, and how the views show it. */
export interface IMedia {
  name: string;
  kind: 'figure' | 'image' | 'table' | 'text' | 'dict';
  step: number | null;
  media_type: string | null;
  size_bytes: number;
  /** image: fetched when shown; table and text: `preview` holds the start; file: a download. */
  view: 'image' | 'table' | 'text' | 'file';
  /** The name an image series shares across its steps; the artifact's name otherwise. */
  series: string;
  preview?: ITablePreview | ITextPreview;
}

export interface ITablePreview {
  columns: string[];
  rows: Value[][];
  n_rows: number;
}

export interface ITextPreview {
  text: string;
  truncated: boolean;
}

export interface IRunDetails {
  run: IRun;
  histories: { [key: string]: { points: [number, number | null][]; total: number } };
  media: IMedia[];
  lineage: ILineage;
}

export interface IComparison {
  labels: string[];
  metric: string | null;
  curves: { [key: string]: { [label: string]: [number, number | null][] } };
  code_notes: string[];
  runs: ITable;
  metrics: ITable;
  params: ITable;
  data: ITable;
  data_changes: ITable;
  code: ITable;
  environment: ITable;
  production: ITable;
  /** Each compared run's media, by run id. */
  media: { [runId: string]: IMedia[] };
}

export interface ISweepSummary {
  sweep_id: string;
  name: string;
  directions: string | null;
  sessions: number;
  trials: number;
  complete: number;
  pruned: number;
  failed: number;
  running: number;
  started: string;
  last_run: string;
}

export interface ISweep extends Omit<ISweepSummary, 'directions' | 'trials'> {
  directions: string[];
  value_columns: string[];
  trials: ITable;
  best: { trial: number; run_id: string; value: number; params: { [key: string]: Value } } | null;
}

export interface IPackageJob {
  job_id: string;
  ref: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  step: string;
  fraction: number;
  result: {
    package_id: string;
    context: string;
    tag: string;
    image: { tag: string; digest: string | null; size_bytes: number | null } | null;
    build_command: string;
    [key: string]: Value;
  } | null;
  error: string | null;
}

/** A check of a promotion request, as the alias's policy asked for it. */
export interface IPromotionCheck {
  check: string;
  passed: boolean;
  detail: string;
  /** What the check measured (scores, latencies, sizes, the data it used). */
  evidence: { [key: string]: Value };
}

/** One version of a registered model (a row of `nt.model_versions`). */
export interface IRegistryVersion {
  version: number;
  ref: string;
  model_id: string;
  run_id: string;
  run_name: string | null;
  aliases: string[];
  registered_by: string;
  registered_at: string;
  metrics: { [key: string]: number | null };
}

export interface IRegisteredModel {
  name: string;
  description: string | null;
  latest_version: number;
  pending_requests: number;
  /** Where each alias points: its version number. */
  aliases: { [alias: string]: number };
  versions: IRegistryVersion[];
}

/** A promotion request waiting on its checks or on a decision. */
export interface IPromotionRequest {
  request_id: number;
  model: string;
  version: number;
  ref: string;
  alias: string;
  status: 'checking' | 'pending';
  requested_by: string;
  requested_at: string;
  note: string | null;
  /** The version the alias points at now (null: it points nowhere yet). */
  holder: number | null;
  checks: IPromotionCheck[];
}

export interface IRegistry {
  models: IRegisteredModel[];
  requests: IPromotionRequest[];
}

/** A serving package, as ``GET /nbtrail/api/packages`` lists it. */
export interface IPackageSummary {
  package_id: string;
  name: string;
  model_id: string;
  run_id: string;
  image_tag: string | null;
  created_at: string;
}

/** One version a package serves. */
export interface IServedVersion {
  role: 'champion' | 'shadow' | 'canary';
  version: string;
  model_id: string;
  /** ``name/version`` in the registry, or null for a bare model id. */
  ref: string | null;
  share: number;
}

/** A version's traffic over the whole window read. */
export interface ITrafficTotal {
  version: string;
  role: string;
  rows: number;
  answered: number;
  share: number | null;
  errors: number;
  dropped: number;
  agreement: number | null;
}

/** One time bucket of one version's traffic. */
export interface ITrafficBucket extends ITrafficTotal {
  time: string;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
}

/** A version in a stored challenge report (``nt.challenge``). */
export interface IChallengeVersion {
  version: string;
  role: string;
  labelled_rows: number;
  metric: number | null;
  metric_low: number | null;
  metric_high: number | null;
  difference: number | null;
  difference_low: number | null;
  difference_high: number | null;
  significantly_worse: boolean;
}

export interface IChallengeReport {
  source: string;
  verdict: string;
  created_at: string;
  run_id: string | null;
  metric_name: string | null;
  versions: IChallengeVersion[];
}

/** A package's live view: ``GET /nbtrail/api/packages/{id}/traffic``. */
export interface ITraffic {
  package_id: string;
  name: string;
  created_at: string;
  versions: IServedVersion[];
  log_dirs: string[];
  every_s: number;
  timeline: ITrafficBucket[];
  totals: ITrafficTotal[];
  lines_read: number;
  truncated: boolean;
  challenge: IChallengeReport | null;
}
