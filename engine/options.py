"""The rescue options, one field per ddrescue option (1.27's, and 1.28-1.30's additions), with
ddrescue's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RescueOptions:
    """Everything that shapes a rescue run (see ``ddfs rescue --help``)."""

    sector_size: int = 512  # -b
    cluster_sectors: int = 0  # -c (0: 65536 / sector_size)
    skip_initial: int | None = None  # -K INITIAL (None: from the input size)
    skip_max: int | None = None  # -K ,MAX
    max_retries: int = 0  # -r (-1: infinite)
    cpass: list[int] | None = None  # --cpass (None: all five; [] : no copying)
    reverse: bool = False  # -R
    unidirectional: bool = False  # -u
    no_trim: bool = False  # --no-trim (ddrescue 1.27's -N)
    no_sweep: bool = False  # -N, --no-sweep (1.30): leave the skipped non-tried areas unread
    no_scrape: bool = False  # -n
    try_again: bool = False  # -A
    retrim: bool = False  # -M
    complete_only: bool = False  # -C
    input_pos: int = 0  # -i
    output_pos: int | None = None  # -o (None: same as -i)
    domain_size: int = -1  # -s (-1: to the end)
    max_bad_areas: int = -1  # -e
    max_bad_areas_relative: bool = False  # -e +N
    max_read_errors: int = -1  # -X
    timeout: int = -1  # -T (seconds without a good read)
    direct_in: bool = False  # -d
    direct_out: bool = False  # -D
    force: bool = False  # -f
    truncate: bool = False  # -t
    sparse: bool = False  # -S
    preallocate: bool = False  # -p
    min_outfile_size: int = 0  # -x (0: no extension)
    extend_to_input: bool = False  # -x 0 (1.30): extend the output to the input's size
    size_from_output: bool = False  # --size=output (1.30): the input size is the output's
    synchronous: bool = False  # -y
    compare: bool = False  # -W
    same_file: bool = False  # --same-file
    test_map: str | None = None  # -H
    loose_domain: bool = False  # -L
    domain_map: str | None = None  # -m (the '+' blocks of this map restrict the domain)
    fill_types: str | None = None  # -F (fill mode: the statuses to fill, maybe with 'l')
    generate: bool = False  # -G (generate mode)
    command_mode: bool = False  # --command-mode (commands on standard input)
    ignore_write_errors: bool = False  # -w (fill mode)
    save_interval: int = -1  # --mapfile-interval SAVE (-1: auto)
    sync_interval: int = 300  # --mapfile-interval ,SYNC
    log_reads: str | None = None  # --log-reads
    log_events: str | None = None  # --log-events (appended)
    log_rates: str | None = None  # --log-rates
    min_read_rate: int | None = None  # -a (0: a tenth of the average; None: no slow reads)
    delay_slow: int = 30  # --delay-slow (seconds before slow reads count)
    max_slow_reads: int = -1  # --max-slow-reads
    reset_slow: bool = False  # --reset-slow
    max_error_rate: int = -1  # -E (error bytes per second)
    max_read_rate: int = 0  # -Z (bytes per second; 0: no limit)
    reopen_on_error: bool = False  # -O
    verify_on_error: bool = False  # -J, --check-on-error
    verify_input_size: bool = False  # -I, --check-input-size
    continue_errnos: tuple[int, ...] = ()  # --continue-on-errno: these errnos are not fatal
    bad_sector_data: bytes | None = None  # --bad-sector-data: a sector of this content fails
    preview_lines: int = 0  # -P
    pause_on_error: float = 0.0  # --pause-on-error (seconds)
    simulated_pause: bool = False  # --pause-on-error=sN: only added to the clock
    pause_on_pass: int = 0  # --pause-on-pass (seconds)
    ask: bool = False  # --ask
    allow_other_source: bool = False  # --allow-other-source (skip the identity check)
    quiet: bool = False  # -q
    verbosity: int = 0  # -v
    binary_prefixes: bool = False  # -B
    metadata_first: bool = True  # --no-metadata-first (test mode -H implies it)
    first: list[str] = field(default_factory=list)  # --first VOLUME:/path (files first)
    notify_command: str | None = None  # --notify-command CMD (run at the end)
    hashes: list[str] = field(default_factory=list)  # --hash sha256,md5 (the case record)
    schedule: str = "ddfs"  # --schedule: the strategy (engine.schedule.choose)
    command_line: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def old_meanings(self) -> bool:
        """ddrescue 1.27's meaning where 1.30 changed one (``-N``, ``--cpass=5``, ``-M``, ``-O``):
        with ``--schedule=ddrescue-1.27``."""
        return self.schedule == "ddrescue-1.27"

    @property
    def cluster_size(self) -> int:
        """Bytes per copying-phase read (``softbs``)."""
        sectors = self.cluster_sectors or max(1, 65536 // self.sector_size)
        return sectors * self.sector_size

    def skip_sizes(self, insize: int) -> tuple[int, int]:
        """INITIAL and MAX skip sizes as ddrescue derives them: the initial skip is the input
        size / 32,768 (1.30), or / 100,000 with ddrescue 1.27's meanings."""
        ss = self.sector_size
        ksize = 65536
        if self.skip_initial is not None:
            initial = self.skip_initial
        else:
            divisor = 100000 if self.old_meanings else 32768
            base = max(insize // divisor if insize > 0 else 0, ksize)
            initial = -(-base // ksize) * ksize
        initial = -(-initial // ss) * ss
        if self.skip_max is not None:
            maximum = self.skip_max
        elif insize > 0:
            maximum = max(initial, insize // 100)
        else:
            maximum = 2**60
        maximum = -(-maximum // ss) * ss
        return initial, maximum
