/** Building blocks shared by every view: messages, sections, tables, status badges. */
import * as React from 'react';

import { formatValue } from '../format';
import { ITable, Value } from '../tokens';

/** A failure, said in the panel: never a blank view. */
export function ErrorBox(props: { message: string; title?: string }): JSX.Element {
  return (
    <div className="nbt-error" role="alert">
      <strong>{props.title ?? 'nbtrail could not load this'}</strong>
      <div>{props.message}</div>
    </div>
  );
}

/** A state with nothing to show yet, and what to do about it. */
export function Notice(props: { children: React.ReactNode }): JSX.Element {
  return (
    <div className="nbt-notice" role="status">
      {props.children}
    </div>
  );
}

export function Loading(props: { what: string }): JSX.Element {
  return (
    <div className="nbt-notice" role="status" aria-busy="true">
      Loading {props.what}…
    </div>
  );
}

export function Section(props: {
  title: string;
  children: React.ReactNode;
  count?: number;
}): JSX.Element {
  const id = `nbt-section-${props.title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <section className="nbt-section" aria-labelledby={id}>
      <h3 id={id}>
        {props.title}
        {props.count !== undefined && <span className="nbt-count">{props.count}</span>}
      </h3>
      {props.children}
    </section>
  );
}

export function StatusBadge(props: { status: string }): JSX.Element {
  return (
    <span className={`nbt-status nbt-status-${props.status}`} title={props.status}>
      {props.status}
    </span>
  );
}

/** A table of columns and rows as the server sends them; ``highlight`` marks rows. */
export function DataTable(props: {
  table: ITable;
  label: string;
  highlight?: (row: Value[]) => boolean;
  hide?: string[];
  empty?: string;
}): JSX.Element {
  const keep = props.table.columns
    .map((c, i) => [c, i] as [string, number])
    .filter(([c]) => !(props.hide ?? []).includes(c));
  if (!props.table.rows.length) {
    return <div className="nbt-empty">{props.empty ?? '(none)'}</div>;
  }
  return (
    <div className="nbt-table-scroll">
      <table className="nbt-table" aria-label={props.label}>
        <thead>
          <tr>
            {keep.map(([c]) => (
              <th key={c} scope="col">
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.table.rows.map((row, r) => (
            <tr key={r} className={props.highlight?.(row) ? 'nbt-highlight' : undefined}>
              {keep.map(([c, i]) => (
                <td key={c}>{formatValue(row[i])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A two-column table of a mapping. */
export function KeyValues(props: {
  values: { [key: string]: Value | undefined };
  label: string;
}): JSX.Element {
  const entries = Object.entries(props.values);
  if (!entries.length) {
    return <div className="nbt-empty">(none)</div>;
  }
  return (
    <table className="nbt-table nbt-kv" aria-label={props.label}>
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <th scope="row">{k}</th>
            <td>{formatValue(v as Value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
