"""One example for each `referrals` command, shown at the foot of its `--help` (a test checks none is missing)."""

from __future__ import annotations

REF = "REF-7K3QX-M2ZPA"
MIS = "MIS-7K3QX-M2ZPA"
PLAN = "PLAN-7K3QX-M2ZPA"
SITTING = "PANEL-CSENORTH-2026-12-01"

EXAMPLES: dict[str, str] = {
    "template vist": "referrals template vist --incident domestic_abuse > vist.json",
    "template partner": "referrals template partner --tool cse_screening_tool --referrer-id HV-5001 --agency health "
                        "> referral.json",
    "submit": "referrals submit examples/vist-domestic-abuse.json",
    "refer": "referrals refer examples/partner-cse-screening-tool.json",
    "show": f"referrals show {REF} -o json",
    "list": "referrals list --overdue --updated-since 2026-11-24 -o jsonl",
    "address-warning": 'referrals address-warning "1 Placeholder Street, Testtown"',
    "review": f'referrals review {REF} --return --reasons "Record what the child said."',
    "resubmit": f"referrals resubmit {REF} vist.json",
    "screen": f'referrals screen {REF} --risk medium --outcome strategy_discussion --rationale "..." '
              "--child C1=strategy_discussion --inform health",
    "override-request": f'referrals override-request {REF} --reason "The earlier referrals were another household."',
    "override": f'referrals override {REF} --grant --rationale "Checked: no cumulative concern."',
    "csc-not-informed": f'referrals csc-not-informed {REF} --rationale "Children\'s social care opened this referral."',
    "strategy": f'referrals strategy {REF} --held-at 2026-11-24T11:00 --section-47 --rationale "..." '
                '--attendee "SW Synthetic|childrens_social_care|social worker|allocated_social_worker" '
                '--attendee "DC Synthetic|police|detective|investigating_officer" --attendee "Nurse|health|nurse" '
                '--action "Visit the child at school|childrens_social_care|SW Synthetic|2026-11-27"',
    "conference book": f'referrals conference book {REF} --at 2026-12-10T10:00 --report-in-lieu --rationale "..." '
                       '--report-owner "DC Synthetic"',
    "conference outcome": f'referrals conference outcome {REF} --held-at 2026-12-10T10:00 --plan --police-absent '
                          '--rationale "..." --social-worker "SW-6001|Social Worker Synthetic"',
    "regrade": f'referrals regrade {REF} high --reason "The suspect has returned to the address."',
    "close": f'referrals close {REF} no_further_action --note "No concerns found."',
    "actions complete": f'referrals actions complete {REF}.A1 --note "Visited the child at school."',
    "actions reassign": f'referrals actions reassign {REF}.A1 --agency health --owner "Nurse Synthetic" '
                        '--reason "Knows the child." --deadline 2026-11-28',
    "escalations": "referrals escalations --mine --state open",
    "ack": f"referrals ack {REF}.E1",
    "access-log": f"referrals access-log --reference {REF} --since 2026-11-01",
    "retention": "referrals retention",
    "quarantine": f"referrals quarantine --reference {REF}",
    "missing report": "referrals missing report report.json",
    "missing show": f"referrals missing show {MIS}",
    "missing list": "referrals missing list --phase missing",
    "missing most-frequent": "referrals missing most-frequent --limit 20",
    "missing low-grade": f'referrals missing low-grade {MIS} --keep --rationale "Known to stay with a grandparent."',
    "missing review": f'referrals missing review {MIS} --tracing-done "Home searched" --next-steps "CCTV at the station"',
    "missing tracing": f'referrals missing tracing {MIS} --activity cctv_reviewed --note "Seen at 17:10."',
    "missing grade": f'referrals missing grade {MIS} --to high --reason "Seen with an unknown adult."',
    "missing found": f'referrals missing found {MIS} --where relative_or_friend --how found_by_police '
                     '--safe-and-well safe_and_well --interviewer "SW Synthetic" --manager "TM Synthetic"',
    "missing interview": f"referrals missing interview {MIS} --outcome done --held-at 2026-11-26T15:00",
    "plans write": "referrals plans write plan.json",
    "plans show": f"referrals plans show {PLAN}",
    "plans due": "referrals plans due --within-days 14",
    "plans revise": f"referrals plans revise {PLAN} plan.json --folds-in 1",
    "plans addendum": f'referrals plans addendum {PLAN} --information "Also uses the library on Nowhere Road." --fold-in',
    "plans end": f'referrals plans end {PLAN} --reason "Moved out of the area."',
    "triage show": "referrals triage show 2026-11-24",
    "triage open": "referrals triage open 2026-11-24",
    "triage decide": f'referrals triage decide 2026-11-24 {REF} --outcome early_help --rationale "..."',
    "panels list": "referrals panels list",
    "panels set": "referrals panels set panel.json",
    "panels open": "referrals panels open CSENORTH 2026-12-01",
    "panels sittings": "referrals panels sittings --upcoming",
    "panels show": f"referrals panels show {SITTING}",
    "panels agenda": f'referrals panels agenda {SITTING} --add "{MIS}|education" --reason "A CSE concern."',
    "panels meeting": f"referrals panels meeting {SITTING}",
    "panels attendance": f'referrals panels attendance {SITTING} --attendee "DC Synthetic|police|CSE team|cse_team"',
    "panels outcome": f'referrals panels outcome {SITTING} {MIS} --grade high --rationale "..."',
    "panels close": f"referrals panels close {SITTING}",
    "panels minutes": f"referrals panels minutes {SITTING}",
    "panels absences": "referrals panels absences",
    "panels actions": "referrals panels actions --open",
    "audit export": f"referrals audit export --reference {REF} --out export/ --actor AUD-4001",
    "audit replay": "referrals audit replay --from-dir export/ --actor AUD-4001",
    "audit timeline": f"referrals audit timeline {REF} --html timeline.html --actor AUD-4001",
    "audit as-of": f"referrals audit as-of {REF} 2026-11-24T12:00 --actor AUD-4001",
    "audit reconcile": "referrals audit reconcile --since 2026-11-01 --actor AUD-4001",
    "audit sample": "referrals audit sample --month 2026-11 --actor AUD-4001",
    "audit schedule": "referrals audit schedule --seed 7",
}
