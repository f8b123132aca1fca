complete -c cio-import -l format -d 'Input format [default: from the file name; stdin needs this flag]' -r -f -a "csv\t''
ndjson\t''"
complete -c cio-import -l delimiter -d 'What separates CSV cells: one character, e.g. \';\' as spreadsheets in many countries write, or `tab` [default: what an Excel file\'s first line sep=; names, a tab for .tsv files, else \',\']' -r
complete -c cio-import -l action -d 'What each record does' -r -f -a "identify\t'Create or update a person with the row\'s attributes'
event\t'Track an event for a person (or an anonymous event, by `anonymous_id`)'
page\t'Track a page view (its name is the page\'s URL or name), like an event'
screen\t'Track a mobile screen view (its name is the screen\'s), like an event'
delete\t'Delete the person'
suppress\t'Suppress the person (and delete their data)'
unsuppress\t'Lift a suppression'
add-device\t'Add a mobile device to the person: device_id (its token) and platform columns'
delete-device\t'Remove a device from the person: a device_id column'
merge\t'Merge each row\'s secondary person into its primary (primary_id, primary_email or primary_cio_id, and secondary_...): for good'
add-relationships\t'Relate the person to an object: an object_id column, and --object-type'
delete-relationships\t'Remove a person\'s relationship to an object'"
complete -c cio-import -l id-column -d 'Column holding the person\'s identifier [default: the first of id, email, cio_id]' -r
complete -c cio-import -l id-type -d 'Which identifier --id-column holds [default: email for a column named email, cio_id for one named cio_id (in any case), else id]. `--id-column user_email --id-type email` sends the values as email addresses, not as ids' -r -f -a "id\t'Your own id for the person'
email\t'The person\'s email address'
cio_id\t'Customer.io\'s own id for the person'
phone\t'The person\'s phone number, E.164 (a + and up to 15 digits); only where the workspace has phone identifiers on. Never looked for by itself: `--id-column phone` picks it'"
complete -c cio-import -l type -d 'Type of a column\'s values, repeatable: COLUMN=string|number|bool|timestamp|json|list [default: string; created_at, and an event\'s timestamp, are timestamps]. A timestamp is sent as Unix seconds and read from RFC 3339, a date, or Unix seconds; timestamp:ms reads Unix milliseconds, timestamp:FORMAT a strftime format (timestamp:%m/%d/%Y). A number may group thousands (1,853.93). A list (list:; for another separator than \',\') is sent as an array of its trimmed items' -r
complete -c cio-import -l timezone -d 'Time zone of times written without an offset (an IANA name: America/New_York) [default: UTC]' -r
complete -c cio-import -l oversize -d 'A person\'s (or object\'s) attribute value over Customer.io\'s 1,000 bytes: reject makes the row invalid, drop leaves the attribute out, truncate cuts text to fit (a JSON value is left out). Counted in the summary' -r -f -a "reject\t'The row is invalid (a failures-file line), as Customer.io would refuse it'
drop\t'The attribute is left out; the rest of the row goes'
truncate\t'Text is cut at a character boundary to fit; a JSON value (which cannot be cut) is left out'"
complete -c cio-import -l empty -d 'Empty cells: skip leaves the attribute untouched; clear sends "" to erase it' -r -f -a "skip\t'Leave the attribute as it is in Customer.io'
clear\t'Send "" so Customer.io clears the attribute'"
complete -c cio-import -l event-name -d 'Event name for rows whose `name` column is empty or missing [--action event, page or screen only] [default: the row\'s `name` column]' -r
complete -c cio-import -l entity -d 'What the rows are about: people, or objects (an object_id column; --action identify or delete)' -r -f -a "person\t'People (and their events, devices and relationships)'
object\t'Objects (companies, accounts, ...): `--object-type` and an `object_id` column'"
complete -c cio-import -l object-type -d 'Object type id (a whole number from 1) of the objects that rows without an object_type_id column name [--entity object and relationships]' -r
complete -c cio-import -l site-id -d 'Workspace site id; needed unless --sandbox or --dry-run' -r
complete -c cio-import -l api-key-file -d 'File holding the Track API key [default: the key in $CUSTOMERIO_TRACK_API_KEY]' -r -F
complete -c cio-import -l region -d 'Workspace region: picks track.customer.io or track-eu.customer.io' -r -f -a "us\t''
eu\t''"
complete -c cio-import -l endpoint -d 'Base URL replacing the region\'s host, e.g. a proxy (plain http:// only to a loopback address) [default: the --region host]' -r
complete -c cio-import -l rate -d 'Most requests per second, retries included, spaced evenly; lowered for a while after a 429, in requests/s' -r
complete -c cio-import -l burst -d 'Requests that may go back to back above the even pace after a quiet spell, in requests; 1 means none' -r
complete -c cio-import -l concurrency -d 'Most requests in flight at once (sent and not yet answered), in requests' -r
complete -c cio-import -l batch -d 'Operations per request, in operations: records go that many at a time through /api/v2/batch (each request under 500 KB; --rate still counts requests); 1 sends each record alone through its v1 endpoint (or /api/v2/entity, for what v1 cannot carry)' -r
complete -c cio-import -l timeout -d 'Time one request may take before it is retried, in seconds' -r
complete -c cio-import -l max-retries -d 'Retries per record after its first attempt (429s included) before it goes to the failures file' -r
complete -c cio-import -l max-retry-after -d 'Longest Retry-After honoured, in seconds; longer ones are cut to this' -r
complete -c cio-import -l max-consecutive-failures -d 'Stop (exit 1) after this many failed requests in a row (5xx, timeouts or network errors with no success between), in requests' -r
complete -c cio-import -l stop-timeout -d 'Once stopping (a signal, a fatal error), the longest requests in flight may take to finish, in seconds; records of those still unanswered then stay unsettled, for --resume to send again' -r
complete -c cio-import -l shared-limit -d 'Share --rate with every importer naming this Redis and the same workspace: one schedule kept in Redis paces them all (redis://[:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS). Give a URL holding a password through the environment' -r
complete -c cio-import -l shared-limit-timeout -d 'How long sending waits for an unreachable --shared-limit Redis before the run stops (checkpoint kept), in seconds' -r
complete -c cio-import -l shard -d 'Take only shard K of N (e.g. 2/3): the records whose person (or object) key hashes to K, so N importers given 1/N .. N/N send every record exactly once between them. Rows that do not map go to shard 1\'s failures file' -r
complete -c cio-import -l max-invalid -d 'Stop (exit 1) once more than N rows are invalid, in rows: a wrongly mapped file should not fill the failures file with a million lines' -r
complete -c cio-import -l resume -d 'Carry on from the checkpoint an interrupted or crashed run left, with the same inputs; new failures are added to the failures file. `--resume=auto` (with the `=`) resumes when a checkpoint of this run exists and starts over otherwise, so a job can give it every time' -r -f -a "always\t'There must be a checkpoint to carry on from (`--resume` alone)'
auto\t'Carry on from the checkpoint of this run if there is one, else start over'"
complete -c cio-import -l failures -d 'Failures file [default: <input stem>.failures.ndjson in the current directory]' -r -F
complete -c cio-import -l checkpoint -d 'Checkpoint file [default: <input stem>.checkpoint.json beside the failures file]' -r -F
complete -c cio-import -l summary -d 'Write a JSON summary here at the end; `-` for stdout [default: none]' -r -F
complete -c cio-import -l progress -d 'Progress display on stderr (NO_COLOR=1 draws the bar without colours)' -r -f -a "auto\t'A bar on a terminal; otherwise a plain line every 5 seconds'
always\t'The bar even when stderr is not a terminal (a CI log that renders ANSI, say)'
never\t'No progress; the summary still prints at the end'"
complete -c cio-import -l state -d 'Remember in this SQLite file what Customer.io accepted, and send only what changed since: unchanged records are counted, not sent. One file per workspace; jobs may share one (a job is its inputs\' paths, digits aside): --missing removes only its own job\'s' -r -F
complete -c cio-import -l missing -d 'After a complete run, delete or suppress the people the state holds that this run\'s inputs did not have (the inputs must be a full export of people)' -r -f -a "ignore\t'Keep them'
delete\t'Delete them from Customer.io'
suppress\t'Suppress them (and delete their data)'"
complete -c cio-import -l max-missing -d 'The most people --missing may remove: a number, or a share of the people in the state (P%); over it nothing is removed and the run exits 1' -r
complete -c cio-import -l show-state -d 'Print what a state holds (its target, entities per kind, its last runs) and exit' -r -F
complete -c cio-import -l rename -d 'Read column OLD as NEW everywhere: every other flag then names it NEW (`--rename "Email Address=email"` makes it the email identifier). OLD may be a pattern (`*` for any text), and a `*` in NEW stands for what OLD\'s matched' -r
complete -c cio-import -l drop -d 'Never send the column COL (its name after --rename; `*` patterns too)' -r
complete -c cio-import -l flatten -d 'NDJSON: lift the keys of the nested object KEY to the top level (`--flatten properties`)' -r
complete -c cio-import -l encoding -d 'The inputs\' text encoding: windows-1252, latin1 (iso-8859-1), utf-16le, utf-16be, or any WHATWG label; a byte order mark overrides it, and a failures file (NDJSON whose first line holds `_error`) is read as the UTF-8 it was written in [default: utf-8]' -r
complete -c cio-import -l show -d 'With --dry-run: write the first N operations to stdout, one a line, exactly as they would be sent: a batch\'s JSON operation, or (one a request) the method, path and body' -r
complete -c cio-import -l sandbox-limit -d 'The sandbox\'s limit, in requests per second over a sliding second (429 beyond it); 0 for none' -r
complete -c cio-import -l sandbox-fail-rate -d 'Share of sandbox requests answered 503, from 0 to 1' -r
complete -c cio-import -l sandbox-drop-rate -d 'Share of sandbox requests whose connection is dropped unanswered, from 0 to 1' -r
complete -c cio-import -l sandbox-stall-rate -d 'Share of sandbox requests that stall until past --timeout, from 0 to 1' -r
complete -c cio-import -l sandbox-latency -d 'Latency the sandbox adds to every answer, in milliseconds' -r
complete -c cio-import -l config -d 'Read flags from a TOML file, each under its long name (`rate = 50`, `dry-run = true`, `type = ["age=number"]`, `inputs = ["users.csv"]`), never the API key; its paths are relative to its folder. The command line wins over the environment, which wins over the file; a repeatable flag on the command line replaces the file\'s list' -r -F
complete -c cio-import -l completions -d 'Print the completion script for SHELL to stdout and exit (committed copies are in completions/)' -r -f -a "bash\t''
elvish\t''
fish\t''
powershell\t''
zsh\t''"
complete -c cio-import -l decimal-comma -d 'Number columns write a decimal comma: 0,34 and 1.853,93 (the dot, or a space, groups thousands)'
complete -c cio-import -l strip-apostrophe -d 'Remove the apostrophe a spreadsheet puts before a number kept as text (\'7012345678, \'+1 613 555 0123), in every column; other values keep theirs (\'s-Hertogenbosch)'
complete -c cio-import -l only-existing -d 'Update only people who exist; never create one (sends _update: true) [--action identify only]'
complete -c cio-import -l no-preflight -d 'Skip the credentials and region check (GET /api/v1/accounts/region) made before the first record'
complete -c cio-import -l dry-run -d 'Read, map and validate every row; send nothing. Needs no credentials; invalid rows go to <stem>.dry-run.failures.ndjson (--failures to choose)'
complete -c cio-import -s y -l yes -d 'Go on without asking with an action that cannot be undone (delete, suppress, merge); without it such a run asks on the terminal, or is refused when there is none'
complete -c cio-import -s q -l quiet -d 'Print only errors and the final summary: no progress, warnings or sandbox lines'
complete -c cio-import -s v -l verbose -d 'Log every request\'s outcome to stderr; -vv adds each retry\'s wait'
complete -c cio-import -l sandbox -d 'Import into a built-in stand-in of the Track API on 127.0.0.1: no account needed'
complete -c cio-import -l print-config -d 'Print the configuration this invocation would run with (--config file and command line) as TOML, for --config, and exit without reading the inputs'
complete -c cio-import -l man -d 'Print the man page (roff) to stdout and exit'
complete -c cio-import -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cio-import -s V -l version -d 'Print version'
