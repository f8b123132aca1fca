
use builtin;
use str;

set edit:completion:arg-completer[cio-import] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'cio-import'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'cio-import'= {
            cand --format 'Input format [default: from the file name; stdin needs this flag]'
            cand --delimiter 'What separates CSV cells: one character, e.g. '';'' as spreadsheets in many countries write, or `tab` [default: what an Excel file''s first line sep=; names, a tab for .tsv files, else '','']'
            cand --action 'What each record does'
            cand --id-column 'Column holding the person''s identifier [default: the first of id, email, cio_id]'
            cand --id-type 'Which identifier --id-column holds [default: email for a column named email, cio_id for one named cio_id (in any case), else id]. `--id-column user_email --id-type email` sends the values as email addresses, not as ids'
            cand --type 'Type of a column''s values, repeatable: COLUMN=string|number|bool|timestamp|json|list [default: string; created_at, and an event''s timestamp, are timestamps]. A timestamp is sent as Unix seconds and read from RFC 3339, a date, or Unix seconds; timestamp:ms reads Unix milliseconds, timestamp:FORMAT a strftime format (timestamp:%m/%d/%Y). A number may group thousands (1,853.93). A list (list:; for another separator than '','') is sent as an array of its trimmed items'
            cand --timezone 'Time zone of times written without an offset (an IANA name: America/New_York) [default: UTC]'
            cand --oversize 'A person''s (or object''s) attribute value over Customer.io''s 1,000 bytes: reject makes the row invalid, drop leaves the attribute out, truncate cuts text to fit (a JSON value is left out). Counted in the summary'
            cand --empty 'Empty cells: skip leaves the attribute untouched; clear sends "" to erase it'
            cand --event-name 'Event name for rows whose `name` column is empty or missing [--action event, page or screen only] [default: the row''s `name` column]'
            cand --entity 'What the rows are about: people, or objects (an object_id column; --action identify or delete)'
            cand --object-type 'Object type id (a whole number from 1) of the objects that rows without an object_type_id column name [--entity object and relationships]'
            cand --site-id 'Workspace site id; needed unless --sandbox or --dry-run'
            cand --api-key-file 'File holding the Track API key [default: the key in $CUSTOMERIO_TRACK_API_KEY]'
            cand --region 'Workspace region: picks track.customer.io or track-eu.customer.io'
            cand --endpoint 'Base URL replacing the region''s host, e.g. a proxy (plain http:// only to a loopback address) [default: the --region host]'
            cand --rate 'Most requests per second, retries included, spaced evenly; lowered for a while after a 429, in requests/s'
            cand --burst 'Requests that may go back to back above the even pace after a quiet spell, in requests; 1 means none'
            cand --concurrency 'Most requests in flight at once (sent and not yet answered), in requests'
            cand --batch 'Operations per request, in operations: records go that many at a time through /api/v2/batch (each request under 500 KB; --rate still counts requests); 1 sends each record alone through its v1 endpoint (or /api/v2/entity, for what v1 cannot carry)'
            cand --timeout 'Time one request may take before it is retried, in seconds'
            cand --max-retries 'Retries per record after its first attempt (429s included) before it goes to the failures file'
            cand --max-retry-after 'Longest Retry-After honoured, in seconds; longer ones are cut to this'
            cand --max-consecutive-failures 'Stop (exit 1) after this many failed requests in a row (5xx, timeouts or network errors with no success between), in requests'
            cand --stop-timeout 'Once stopping (a signal, a fatal error), the longest requests in flight may take to finish, in seconds; records of those still unanswered then stay unsettled, for --resume to send again'
            cand --shared-limit 'Share --rate with every importer naming this Redis and the same workspace: one schedule kept in Redis paces them all (redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS). Give a URL holding a password through the environment'
            cand --shared-limit-timeout 'How long sending waits for an unreachable --shared-limit Redis before the run stops (checkpoint kept), in seconds'
            cand --shard 'Take only shard K of N (e.g. 2/3): the records whose person (or object) key hashes to K, so N importers given 1/N .. N/N send every record exactly once between them. Rows that do not map go to shard 1''s failures file'
            cand --max-invalid 'Stop (exit 1) once more than N rows are invalid, in rows: a wrongly mapped file should not fill the failures file with a million lines'
            cand --resume 'Carry on from the checkpoint an interrupted or crashed run left, with the same inputs; new failures are added to the failures file. `--resume=auto` (with the `=`) resumes when a checkpoint of this run exists and starts over otherwise, so a job can give it every time'
            cand --failures 'Failures file [default: <input stem>.failures.ndjson in the current directory]'
            cand --checkpoint 'Checkpoint file [default: <input stem>.checkpoint.json beside the failures file]'
            cand --summary 'Write a JSON summary here at the end; `-` for stdout [default: none]'
            cand --progress 'Progress display on stderr (NO_COLOR=1 draws the bar without colours)'
            cand --state 'Remember in this SQLite file what Customer.io accepted, and send only what changed since: unchanged records are counted, not sent. One file per workspace; jobs may share one (a job is its inputs'' paths, digits aside): --missing removes only its own job''s'
            cand --missing 'After a complete run, delete or suppress the people the state holds that this run''s inputs did not have (the inputs must be a full export of people)'
            cand --max-missing 'The most people --missing may remove: a number, or a share of the people in the state (P%); over it nothing is removed and the run exits 1'
            cand --show-state 'Print what a state holds (its target, entities per kind, its last runs) and exit'
            cand --rename 'Read column OLD as NEW everywhere: every other flag then names it NEW (`--rename "Email Address=email"` makes it the email identifier). OLD may be a pattern (`*` for any text), and a `*` in NEW stands for what OLD''s matched'
            cand --drop 'Never send the column COL (its name after --rename; `*` patterns too)'
            cand --flatten 'NDJSON: lift the keys of the nested object KEY to the top level (`--flatten properties`)'
            cand --encoding 'The inputs'' text encoding: windows-1252, latin1 (iso-8859-1), utf-16le, utf-16be, or any WHATWG label; a byte order mark overrides it, and a failures file (NDJSON whose first line holds `_error`) is read as the UTF-8 it was written in [default: utf-8]'
            cand --show 'With --dry-run: write the first N operations to stdout, one a line, exactly as they would be sent: a batch''s JSON operation, or (one a request) the method, path and body'
            cand --sandbox-limit 'The sandbox''s limit, in requests per second over a sliding second (429 beyond it); 0 for none'
            cand --sandbox-fail-rate 'Share of sandbox requests answered 503, from 0 to 1'
            cand --sandbox-drop-rate 'Share of sandbox requests whose connection is dropped unanswered, from 0 to 1'
            cand --sandbox-stall-rate 'Share of sandbox requests that stall until past --timeout, from 0 to 1'
            cand --sandbox-latency 'Latency the sandbox adds to every answer, in milliseconds'
            cand --config 'Read flags from a TOML file, each under its long name (`rate = 50`, `dry-run = true`, `type = ["age=number"]`, `inputs = ["users.csv"]`), never the API key; its paths are relative to its folder. The command line wins over the environment, which wins over the file; a repeatable flag on the command line replaces the file''s list'
            cand --completions 'Print the completion script for SHELL to stdout and exit (committed copies are in completions/)'
            cand --decimal-comma 'Number columns write a decimal comma: 0,34 and 1.853,93 (the dot, or a space, groups thousands)'
            cand --strip-apostrophe 'Remove the apostrophe a spreadsheet puts before a number kept as text (''7012345678, ''+1 613 555 0123), in every column; other values keep theirs (''s-Hertogenbosch)'
            cand --only-existing 'Update only people who exist; never create one (sends _update: true) [--action identify only]'
            cand --no-preflight 'Skip the credentials and region check (GET /api/v1/accounts/region) made before the first record'
            cand --dry-run 'Read, map and validate every row; send nothing. Needs no credentials; invalid rows go to <stem>.dry-run.failures.ndjson (--failures to choose)'
            cand -y 'Go on without asking with an action that cannot be undone (delete, suppress, merge); without it such a run asks on the terminal, or is refused when there is none'
            cand --yes 'Go on without asking with an action that cannot be undone (delete, suppress, merge); without it such a run asks on the terminal, or is refused when there is none'
            cand -q 'Print only errors and the final summary: no progress, warnings or sandbox lines'
            cand --quiet 'Print only errors and the final summary: no progress, warnings or sandbox lines'
            cand -v 'Log every request''s outcome to stderr; -vv adds each retry''s wait'
            cand --verbose 'Log every request''s outcome to stderr; -vv adds each retry''s wait'
            cand --sandbox 'Import into a built-in stand-in of the Track API on 127.0.0.1: no account needed'
            cand --print-config 'Print the configuration this invocation would run with (--config file and command line) as TOML, for --config, and exit without reading the inputs'
            cand --man 'Print the man page (roff) to stdout and exit'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
    ]
    $completions[$command]
}
