
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'cio-import' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'cio-import'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'cio-import' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Input format [default: from the file name; stdin needs this flag]')
            [CompletionResult]::new('--delimiter', '--delimiter', [CompletionResultType]::ParameterName, 'What separates CSV cells: one character, e.g. '';'' as spreadsheets in many countries write, or `tab` [default: what an Excel file''s first line sep=; names, a tab for .tsv files, else '','']')
            [CompletionResult]::new('--action', '--action', [CompletionResultType]::ParameterName, 'What each record does')
            [CompletionResult]::new('--id-column', '--id-column', [CompletionResultType]::ParameterName, 'Column holding the person''s identifier [default: the first of id, email, cio_id]')
            [CompletionResult]::new('--id-type', '--id-type', [CompletionResultType]::ParameterName, 'Which identifier --id-column holds [default: email for a column named email, cio_id for one named cio_id (in any case), else id]. `--id-column user_email --id-type email` sends the values as email addresses, not as ids')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Type of a column''s values, repeatable: COLUMN=string|number|bool|timestamp|json|list [default: string; created_at, and an event''s timestamp, are timestamps]. A timestamp is sent as Unix seconds and read from RFC 3339, a date, or Unix seconds; timestamp:ms reads Unix milliseconds, timestamp:FORMAT a strftime format (timestamp:%m/%d/%Y). A number may group thousands (1,853.93). A list (list:; for another separator than '','') is sent as an array of its trimmed items')
            [CompletionResult]::new('--timezone', '--timezone', [CompletionResultType]::ParameterName, 'Time zone of times written without an offset (an IANA name: America/New_York) [default: UTC]')
            [CompletionResult]::new('--oversize', '--oversize', [CompletionResultType]::ParameterName, 'A person''s (or object''s) attribute value over Customer.io''s 1,000 bytes: reject makes the row invalid, drop leaves the attribute out, truncate cuts text to fit (a JSON value is left out). Counted in the summary')
            [CompletionResult]::new('--empty', '--empty', [CompletionResultType]::ParameterName, 'Empty cells: skip leaves the attribute untouched; clear sends "" to erase it')
            [CompletionResult]::new('--event-name', '--event-name', [CompletionResultType]::ParameterName, 'Event name for rows whose `name` column is empty or missing [--action event, page or screen only] [default: the row''s `name` column]')
            [CompletionResult]::new('--entity', '--entity', [CompletionResultType]::ParameterName, 'What the rows are about: people, or objects (an object_id column; --action identify or delete)')
            [CompletionResult]::new('--object-type', '--object-type', [CompletionResultType]::ParameterName, 'Object type id (a whole number from 1) of the objects that rows without an object_type_id column name [--entity object and relationships]')
            [CompletionResult]::new('--site-id', '--site-id', [CompletionResultType]::ParameterName, 'Workspace site id; needed unless --sandbox or --dry-run')
            [CompletionResult]::new('--api-key-file', '--api-key-file', [CompletionResultType]::ParameterName, 'File holding the Track API key [default: the key in $CUSTOMERIO_TRACK_API_KEY]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'Workspace region: picks track.customer.io or track-eu.customer.io')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'Base URL replacing the region''s host, e.g. a proxy (plain http:// only to a loopback address) [default: the --region host]')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Most requests per second, retries included, spaced evenly; lowered for a while after a 429, in requests/s')
            [CompletionResult]::new('--burst', '--burst', [CompletionResultType]::ParameterName, 'Requests that may go back to back above the even pace after a quiet spell, in requests; 1 means none')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Most requests in flight at once (sent and not yet answered), in requests')
            [CompletionResult]::new('--batch', '--batch', [CompletionResultType]::ParameterName, 'Operations per request, in operations: records go that many at a time through /api/v2/batch (each request under 500 KB; --rate still counts requests); 1 sends each record alone through its v1 endpoint (or /api/v2/entity, for what v1 cannot carry)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Time one request may take before it is retried, in seconds')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'Retries per record after its first attempt (429s included) before it goes to the failures file')
            [CompletionResult]::new('--max-retry-after', '--max-retry-after', [CompletionResultType]::ParameterName, 'Longest Retry-After honoured, in seconds; longer ones are cut to this')
            [CompletionResult]::new('--max-consecutive-failures', '--max-consecutive-failures', [CompletionResultType]::ParameterName, 'Stop (exit 1) after this many failed requests in a row (5xx, timeouts or network errors with no success between), in requests')
            [CompletionResult]::new('--stop-timeout', '--stop-timeout', [CompletionResultType]::ParameterName, 'Once stopping (a signal, a fatal error), the longest requests in flight may take to finish, in seconds; records of those still unanswered then stay unsettled, for --resume to send again')
            [CompletionResult]::new('--shared-limit', '--shared-limit', [CompletionResultType]::ParameterName, 'Share --rate with every importer naming this Redis and the same workspace: one schedule kept in Redis paces them all (redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS). Give a URL holding a password through the environment')
            [CompletionResult]::new('--shared-limit-timeout', '--shared-limit-timeout', [CompletionResultType]::ParameterName, 'How long sending waits for an unreachable --shared-limit Redis before the run stops (checkpoint kept), in seconds')
            [CompletionResult]::new('--shard', '--shard', [CompletionResultType]::ParameterName, 'Take only shard K of N (e.g. 2/3): the records whose person (or object) key hashes to K, so N importers given 1/N .. N/N send every record exactly once between them. Rows that do not map go to shard 1''s failures file')
            [CompletionResult]::new('--max-invalid', '--max-invalid', [CompletionResultType]::ParameterName, 'Stop (exit 1) once more than N rows are invalid, in rows: a wrongly mapped file should not fill the failures file with a million lines')
            [CompletionResult]::new('--resume', '--resume', [CompletionResultType]::ParameterName, 'Carry on from the checkpoint an interrupted or crashed run left, with the same inputs; new failures are added to the failures file. `--resume=auto` (with the `=`) resumes when a checkpoint of this run exists and starts over otherwise, so a job can give it every time')
            [CompletionResult]::new('--failures', '--failures', [CompletionResultType]::ParameterName, 'Failures file [default: <input stem>.failures.ndjson in the current directory]')
            [CompletionResult]::new('--checkpoint', '--checkpoint', [CompletionResultType]::ParameterName, 'Checkpoint file [default: <input stem>.checkpoint.json beside the failures file]')
            [CompletionResult]::new('--summary', '--summary', [CompletionResultType]::ParameterName, 'Write a JSON summary here at the end; `-` for stdout [default: none]')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'Progress display on stderr (NO_COLOR=1 draws the bar without colours)')
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Remember in this SQLite file what Customer.io accepted, and send only what changed since: unchanged records are counted, not sent. One file per workspace; jobs may share one (a job is its inputs'' paths, digits aside): --missing removes only its own job''s')
            [CompletionResult]::new('--missing', '--missing', [CompletionResultType]::ParameterName, 'After a complete run, delete or suppress the people the state holds that this run''s inputs did not have (the inputs must be a full export of people)')
            [CompletionResult]::new('--max-missing', '--max-missing', [CompletionResultType]::ParameterName, 'The most people --missing may remove: a number, or a share of the people in the state (P%); over it nothing is removed and the run exits 1')
            [CompletionResult]::new('--show-state', '--show-state', [CompletionResultType]::ParameterName, 'Print what a state holds (its target, entities per kind, its last runs) and exit')
            [CompletionResult]::new('--rename', '--rename', [CompletionResultType]::ParameterName, 'Read column OLD as NEW everywhere: every other flag then names it NEW (`--rename "Email Address=email"` makes it the email identifier). OLD may be a pattern (`*` for any text), and a `*` in NEW stands for what OLD''s matched')
            [CompletionResult]::new('--drop', '--drop', [CompletionResultType]::ParameterName, 'Never send the column COL (its name after --rename; `*` patterns too)')
            [CompletionResult]::new('--flatten', '--flatten', [CompletionResultType]::ParameterName, 'NDJSON: lift the keys of the nested object KEY to the top level (`--flatten properties`)')
            [CompletionResult]::new('--encoding', '--encoding', [CompletionResultType]::ParameterName, 'The inputs'' text encoding: windows-1252, latin1 (iso-8859-1), utf-16le, utf-16be, or any WHATWG label; a byte order mark overrides it, and a failures file (NDJSON whose first line holds `_error`) is read as the UTF-8 it was written in [default: utf-8]')
            [CompletionResult]::new('--show', '--show', [CompletionResultType]::ParameterName, 'With --dry-run: write the first N operations to stdout, one a line, exactly as they would be sent: a batch''s JSON operation, or (one a request) the method, path and body')
            [CompletionResult]::new('--sandbox-limit', '--sandbox-limit', [CompletionResultType]::ParameterName, 'The sandbox''s limit, in requests per second over a sliding second (429 beyond it); 0 for none')
            [CompletionResult]::new('--sandbox-fail-rate', '--sandbox-fail-rate', [CompletionResultType]::ParameterName, 'Share of sandbox requests answered 503, from 0 to 1')
            [CompletionResult]::new('--sandbox-drop-rate', '--sandbox-drop-rate', [CompletionResultType]::ParameterName, 'Share of sandbox requests whose connection is dropped unanswered, from 0 to 1')
            [CompletionResult]::new('--sandbox-stall-rate', '--sandbox-stall-rate', [CompletionResultType]::ParameterName, 'Share of sandbox requests that stall until past --timeout, from 0 to 1')
            [CompletionResult]::new('--sandbox-latency', '--sandbox-latency', [CompletionResultType]::ParameterName, 'Latency the sandbox adds to every answer, in milliseconds')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read flags from a TOML file, each under its long name (`rate = 50`, `dry-run = true`, `type = ["age=number"]`, `inputs = ["users.csv"]`), never the API key; its paths are relative to its folder. The command line wins over the environment, which wins over the file; a repeatable flag on the command line replaces the file''s list')
            [CompletionResult]::new('--completions', '--completions', [CompletionResultType]::ParameterName, 'Print the completion script for SHELL to stdout and exit (committed copies are in completions/)')
            [CompletionResult]::new('--decimal-comma', '--decimal-comma', [CompletionResultType]::ParameterName, 'Number columns write a decimal comma: 0,34 and 1.853,93 (the dot, or a space, groups thousands)')
            [CompletionResult]::new('--strip-apostrophe', '--strip-apostrophe', [CompletionResultType]::ParameterName, 'Remove the apostrophe a spreadsheet puts before a number kept as text (''7012345678, ''+1 613 555 0123), in every column; other values keep theirs (''s-Hertogenbosch)')
            [CompletionResult]::new('--only-existing', '--only-existing', [CompletionResultType]::ParameterName, 'Update only people who exist; never create one (sends _update: true) [--action identify only]')
            [CompletionResult]::new('--no-preflight', '--no-preflight', [CompletionResultType]::ParameterName, 'Skip the credentials and region check (GET /api/v1/accounts/region) made before the first record')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Read, map and validate every row; send nothing. Needs no credentials; invalid rows go to <stem>.dry-run.failures.ndjson (--failures to choose)')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Go on without asking with an action that cannot be undone (delete, suppress, merge); without it such a run asks on the terminal, or is refused when there is none')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Go on without asking with an action that cannot be undone (delete, suppress, merge); without it such a run asks on the terminal, or is refused when there is none')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final summary: no progress, warnings or sandbox lines')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final summary: no progress, warnings or sandbox lines')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log every request''s outcome to stderr; -vv adds each retry''s wait')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log every request''s outcome to stderr; -vv adds each retry''s wait')
            [CompletionResult]::new('--sandbox', '--sandbox', [CompletionResultType]::ParameterName, 'Import into a built-in stand-in of the Track API on 127.0.0.1: no account needed')
            [CompletionResult]::new('--print-config', '--print-config', [CompletionResultType]::ParameterName, 'Print the configuration this invocation would run with (--config file and command line) as TOML, for --config, and exit without reading the inputs')
            [CompletionResult]::new('--man', '--man', [CompletionResultType]::ParameterName, 'Print the man page (roff) to stdout and exit')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
