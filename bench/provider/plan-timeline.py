#!/usr/bin/env python3
"""Per-launch timeline of `terraform plan` runs from `perf script -F comm,pid,tid,time,event,trace`
of the tracepoints plan-timeline.sh records. For every provider process Terraform starts (the
first, second, third of each plan), the median over the plans of:
  before     from the previous provider's reaping (or terraform's exec) to this exec: Terraform's
             own work, including go-plugin's AutoMTLS client certificate (a P-521 key, signed)
  exec->hs   exec to the handshake line on stdout (the provider's start-up)
  hs->conn   handshake line to Terraform's connect() on the announced socket
  conn->last connect to Terraform's last write on that connection: TLS handshake, the RPCs, and
             Terraform's work between them (graph walk, evaluation)
  last->exit Terraform's last write (go-plugin's Kill: Shutdown, then close) to the provider's
             exit_group
  exit->reap exit_group to Terraform's waitid returning
and after the last launch, to terraform's exit. Plans are grouped by the provider binary they
started (so one trace can hold plans of two builds, interleaved). Usage:
plan-timeline.py < perf-script-output"""
import re
import statistics
import sys
from collections import defaultdict

line_re = re.compile(r'\s*(\S+)\s+(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)')
plans = []  # each: dict(start, end, launches=[...])
plan = None
launch = None
conn_fd = None
for line in sys.stdin:
    m = line_re.match(line)
    if not m:
        continue
    comm, pid, tid, t, ev, rest = m.groups()
    pid, t = int(pid), float(t) * 1000.0
    if ev == 'sched:sched_process_exec':
        if rest.startswith('filename=') and rest.split()[0].endswith('/terraform'):
            plan = dict(pid=pid, start=t, end=None, launches=[])
            plans.append(plan)
            launch = None
        elif plan and 'terraform-provider-' in rest:
            plan.setdefault('binary', rest.split()[0][len('filename='):])
            launch = dict(pid=pid, exec=t, hs=None, conn=None, last=None, exit=None, reap=None)
            plan['launches'].append(launch)
            conn_fd = None
        continue
    if not plan:
        continue
    if ev == 'sched:sched_process_exit' and pid == plan['pid'] and 'group_dead=true' in rest:
        plan['end'] = t
        continue
    if not launch:
        continue
    if ev == 'syscalls:sys_enter_write' and pid == launch['pid'] and rest.startswith('fd: 0x00000001,') and launch['hs'] is None:
        launch['hs'] = t
    elif ev == 'syscalls:sys_enter_connect' and pid == plan['pid'] and launch['hs'] and launch['conn'] is None:
        launch['conn'] = t
        conn_fd = rest.split(',')[0]
    elif ev == 'syscalls:sys_enter_write' and pid == plan['pid'] and conn_fd and rest.startswith(conn_fd + ',') and launch['exit'] is None:
        launch['last'] = t
    elif ev == 'syscalls:sys_enter_exit_group' and pid == launch['pid']:
        launch['exit'] = t
    elif ev == 'syscalls:sys_exit_waitid' and pid == plan['pid'] and launch['exit'] and launch['reap'] is None and rest.strip() == '0x0':
        launch['reap'] = t

cols = ['before', 'exec->hs', 'hs->conn', 'conn->last', 'last->exit', 'exit->reap']
med = statistics.median
printed = 0
for binary in sorted({p.get('binary') for p in plans if p.get('binary')}):
    rows = defaultdict(lambda: defaultdict(list))
    totals, tails = [], []
    complete = 0
    for p in plans:
        ls = p['launches']
        if p.get('binary') != binary or not p['end'] or \
                any(l[k] is None for l in ls for k in ('hs', 'conn', 'last', 'exit', 'reap')):
            continue
        complete += 1
        totals.append(p['end'] - p['start'])
        prev = p['start']
        for i, l in enumerate(ls):
            r = rows[i]
            r['before'].append(l['exec'] - prev)
            r['exec->hs'].append(l['hs'] - l['exec'])
            r['hs->conn'].append(l['conn'] - l['hs'])
            r['conn->last'].append(l['last'] - l['conn'])
            r['last->exit'].append(l['exit'] - l['last'])
            r['exit->reap'].append(l['reap'] - l['exit'])
            prev = l['reap']
        tails.append(p['end'] - prev)
    if not complete:
        continue
    printed += 1
    print(f'{binary}: {complete} plans; terraform exec to exit: median {med(totals):.1f} ms; medians per launch (ms):')
    print(f'{"launch":>6} ' + ' '.join(f'{c:>11}' for c in cols) + f' {"provider":>9}')
    for i in sorted(rows):
        r = rows[i]
        alive = med([a + b + c + d for a, b, c, d in zip(r['exec->hs'], r['hs->conn'], r['conn->last'], r['last->exit'])])
        print(f'{i + 1:>6} ' + ' '.join(f'{med(r[c]):11.2f}' for c in cols) + f' {alive:9.2f}')
    print(f'after the last provider is reaped, to terraform\'s exit: {med(tails):.2f} ms')
if not printed:
    sys.exit('no complete plan in the trace')
print('(provider = exec to exit_group: the time a provider process is alive; "before" includes '
      'go-plugin\'s client certificate and Terraform\'s graph work)')
