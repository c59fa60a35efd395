{#- How the loaded tables' columns are spelled, per warehouse, and whether an optional table is loaded. -#}

{#- A column of the loaded tables by hauser's name. target-postgres keeps the case as sent ("EventStart"), so it
    must be quoted there; DuckDB (lower-cased), Snowflake (upper-cased), BigQuery and Redshift resolve the bare name
    case-insensitively. -#}
{% macro fs_col(name) -%}{{ return(adapter.dispatch('fs_col', 'fullstory')(name)) }}{%- endmacro %}
{% macro default__fs_col(name) -%}{{ name }}{%- endmacro %}
{% macro postgres__fs_col(name) -%}"{{ name }}"{%- endmacro %}
{% macro redshift__fs_col(name) -%}{{ name }}{%- endmacro %}

{#- True when the source table exists (the `individuals` stream is optional). Always true while parsing. -#}
{% macro fs_source_exists(table) -%}
  {%- if not execute -%}{{ return(true) }}{%- endif -%}
  {%- set src = source('fullstory', table) -%}
  {%- set rel = adapter.get_relation(database=src.database, schema=src.schema, identifier=src.identifier) -%}
  {{ return(rel is not none) }}
{%- endmacro %}
