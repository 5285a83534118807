-- Cases imported from an archive (the demo's synthetic weeks before the stack began): their facts were
-- written through the recorder's projections like any other, but no workflow history stands behind them.
-- The reconciliation counts them as imported rather than as rows without a workflow.

CREATE TABLE imported_cases (
    reference   text PRIMARY KEY,
    source      text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
