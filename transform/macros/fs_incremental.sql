{#- Incremental runs (docs/models.md, "Incremental runs").

    The cutoff is the newest timestamp already modelled in {{ this }} minus `fullstory_lookback_hours`. A run re-models
    every key (session, page, event) with an event at or after the cutoff, reading its history back to
    cutoff - lookback, so a session that spans midnight or a window that arrives late (within the lookback) is
    rebuilt whole. The cutoff is computed before the model's query and inlined as a literal, so the warehouse can
    prune on it (a subquery would stop PostgreSQL pushing the filter into the staging view). -#}

{% macro fs_cutoff(ts_column) -%}
  {%- if not (execute and is_incremental()) -%}{{ return(none) }}{%- endif -%}
  {%- set newest = run_query('select max(' ~ ts_column ~ ') from ' ~ this).columns[0].values()[0] -%}
  {%- if newest is none -%}{{ return(none) }}{%- endif -%}
  {{ return(newest - modules.datetime.timedelta(hours=var('fullstory_lookback_hours') | float)) }}
{%- endmacro %}

{% macro fs_ts(value) -%}
cast('{{ value.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- Rows of `relation` to (re)model: all of them on a full build; on an incremental run, those of every `key` with a
    `ts_column` >= cutoff, back to cutoff - lookback (`key` none: just the rows >= cutoff). -#}
{% macro fs_rows_to_model(relation, ts_column, key=none, this_ts_column=none) -%}
  {%- set cutoff = fullstory.fs_cutoff(this_ts_column or ts_column) -%}
  {%- if cutoff is none -%}
select * from {{ relation }}
  {%- elif key is none -%}
select * from {{ relation }} where {{ ts_column }} >= {{ fullstory.fs_ts(cutoff) }}
  {%- else -%}
  {%- set since = cutoff - modules.datetime.timedelta(hours=var('fullstory_lookback_hours') | float) -%}
select * from {{ relation }}
where {{ ts_column }} >= {{ fullstory.fs_ts(since) }}
  and {{ key }} in (select {{ key }} from {{ relation }} where {{ ts_column }} >= {{ fullstory.fs_ts(cutoff) }})
  {%- endif -%}
{%- endmacro %}
